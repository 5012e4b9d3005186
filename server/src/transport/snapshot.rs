//! Snapshot transfers (kind 2): the sending side streams a [`SnapshotSource`] in chunks,
//! the receiving side stores, checks and fsyncs the file before handing it over.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::stream::{BlockingStream, Stream};
use super::wire::{self, Kind};
use super::{Error, Inner, SnapshotSource, SNAPSHOT_IO_TIMEOUT, SNAPSHOT_RESULT_TIMEOUT};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

/// Chunk size the sender uses.
pub(crate) const CHUNK: usize = 1 << 20;
/// Largest chunk a receiver accepts.
const MAX_CHUNK: usize = 16 << 20;
/// Largest snapshot raft message accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// Result bytes after the transfer.
pub(crate) const RESULT_OK: u8 = 0;
pub(crate) const RESULT_CORRUPT: u8 = 1;
pub(crate) const RESULT_STORE_FAILED: u8 = 2;

/// Sends `m` and the file of `src` to `m.to`; `Ok` once the peer stored and accepted it.
pub(super) async fn send(
    inner: &Arc<Inner>,
    m: Message,
    src: Box<dyn SnapshotSource>,
) -> Result<(), Error> {
    let to = m.to;
    let urls = inner.peer_urls(to).ok_or(Error::UnknownPeer(to))?;
    let mut last = Error::UnknownPeer(to);
    let mut stream = None;
    for url in &urls {
        match inner.connect(url, Kind::Snapshot, to).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or(last)?;
    let mut stream = stream.into_blocking(SNAPSHOT_IO_TIMEOUT)?;
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || write_snapshot(&inner, &mut stream, &m, &*src))
        .await
        .map_err(|e| Error::Io(io::Error::other(format!("snapshot sender thread: {e}"))))?
}

/// The blocking half of [`send`].
fn write_snapshot(
    inner: &Inner,
    stream: &mut BlockingStream,
    m: &Message,
    src: &dyn SnapshotSource,
) -> Result<(), Error> {
    let mut head = Vec::new();
    wire::encode_message(m, &mut head)?;
    head.extend_from_slice(&src.size().to_be_bytes());
    stream.write_all(&head)?;
    let mut w = ChunkWriter {
        inner,
        stream: &mut *stream,
        buf: Vec::with_capacity(4 + CHUNK),
        crc: 0,
        total: 0,
    };
    w.buf.extend_from_slice(&[0; 4]);
    let written = src.write_to(&mut w)?;
    w.emit()?;
    if written != w.total {
        tracing::warn!(
            written,
            sent = w.total,
            "snapshot source miscounted what it wrote"
        );
    }
    let mut tail = [0u8; 16];
    tail[4..12].copy_from_slice(&w.total.to_be_bytes());
    tail[12..16].copy_from_slice(&w.crc.to_be_bytes());
    stream.write_all(&tail)?;
    stream.flush()?;
    // The receiver fsyncs the whole file before it answers.
    stream.set_read_timeout(Some(SNAPSHOT_RESULT_TIMEOUT))?;
    let mut result = [0u8; 1];
    stream.read_exact(&mut result)?;
    match result[0] {
        RESULT_OK => Ok(()),
        r => Err(Error::SnapshotRejected(r)),
    }
}

/// Cuts what the source writes into chunk frames, summing the CRC on the way.
struct ChunkWriter<'a> {
    inner: &'a Inner,
    stream: &'a mut BlockingStream,
    /// 4 header bytes, then up to [`CHUNK`] bytes of data.
    buf: Vec<u8>,
    crc: u32,
    total: u64,
}

impl ChunkWriter<'_> {
    /// Sends the buffered chunk, if any.
    fn emit(&mut self) -> io::Result<()> {
        let len = self.buf.len() - 4;
        if len == 0 {
            return Ok(());
        }
        if self.inner.stopped.load(Ordering::Relaxed) {
            return Err(io::Error::other("transport stopped"));
        }
        self.buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
        self.stream.write_all(&self.buf)?;
        self.buf.truncate(4);
        Ok(())
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(4 + CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &data[..n]);
        self.total += n as u64;
        if self.buf.len() == 4 + CHUNK {
            self.emit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a receipt failed.
enum RecvError {
    /// The stream is malformed or fails its checks: answered 1.
    Corrupt(String),
    /// Storing the file failed: answered 2.
    Store(io::Error),
    /// The connection broke or the transport stopped: no answer.
    Net(io::Error),
}

/// Receives one snapshot on an accepted connection (after the OK reply).
pub(super) async fn receive(inner: &Arc<Inner>, stream: Stream, from: u64) -> Result<(), Error> {
    let stream = stream.into_blocking(SNAPSHOT_IO_TIMEOUT)?;
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || receive_blocking(&inner, stream, from))
        .await
        .map_err(|e| Error::Io(io::Error::other(format!("snapshot receiver thread: {e}"))))?
}

fn receive_blocking(inner: &Inner, stream: BlockingStream, from: u64) -> Result<(), Error> {
    let mut r = BufReader::with_capacity(256 << 10, stream);
    let m = match read_message(&mut r) {
        Ok(m) => m,
        Err(e) => return answer(r.get_mut(), e, None),
    };
    if m.to != inner.local_id() || m.from != from {
        let why = format!(
            "snapshot message from {:x} to {:x} on a connection from {from:x}",
            m.from, m.to
        );
        return answer(r.get_mut(), RecvError::Corrupt(why), Some(&m));
    }
    let index = m.get_snapshot().get_metadata().index;
    let path = received_path(&inner.snap_dir, m.to, index);
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if !inner.receiving.lock().insert(tmp.clone()) {
        let why = format!("snapshot {} is already being received", path.display());
        return answer(r.get_mut(), RecvError::Corrupt(why), Some(&m));
    }
    let res = receive_file(inner, &mut r, &tmp, &path);
    inner.receiving.lock().remove(&tmp);
    match res {
        Ok(()) => {
            tracing::info!(from = %format_args!("{:x}", m.from), index, path = %path.display(), "snapshot received");
            let from = m.from;
            if let Err(why) = inner.handler.on_snapshot(m, path.clone()) {
                let _ = std::fs::remove_file(&path);
                tracing::warn!(from = %format_args!("{from:x}"), reason = %why, "rejected a snapshot");
                let stream = r.get_mut();
                stream.write_all(&[RESULT_CORRUPT])?;
                stream.flush()?;
                return Ok(());
            }
            let stream = r.get_mut();
            stream.write_all(&[RESULT_OK])?;
            stream.flush()?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            answer(r.get_mut(), e, Some(&m))
        }
    }
}

/// Reports a failed receipt to the sender (when the connection still works) and the log.
fn answer(stream: &mut BlockingStream, e: RecvError, m: Option<&Message>) -> Result<(), Error> {
    let from = m.map(|m| m.from).unwrap_or_default();
    match e {
        RecvError::Corrupt(why) => {
            tracing::warn!(from = %format_args!("{from:x}"), reason = %why, "rejected a snapshot");
            stream.write_all(&[RESULT_CORRUPT])?;
            stream.flush()?;
            Ok(())
        }
        RecvError::Store(e) => {
            tracing::error!(from = %format_args!("{from:x}"), error = %e, "could not store a received snapshot");
            stream.write_all(&[RESULT_STORE_FAILED])?;
            stream.flush()?;
            Ok(())
        }
        RecvError::Net(e) => Err(Error::Io(e)),
    }
}

fn read_u32(r: &mut impl Read) -> Result<u32, RecvError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(RecvError::Net)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, RecvError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(RecvError::Net)?;
    Ok(u64::from_be_bytes(b))
}

/// The MsgSnapshot frame and the announced size.
fn read_message(r: &mut impl Read) -> Result<Message, RecvError> {
    let len = read_u32(r)? as usize;
    if len > MAX_MESSAGE {
        return Err(RecvError::Corrupt(format!(
            "snapshot message of {len} bytes"
        )));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).map_err(RecvError::Net)?;
    let m = Message::parse_from_bytes(&b)
        .map_err(|e| RecvError::Corrupt(format!("snapshot message: {e}")))?;
    if m.get_msg_type() != MessageType::MsgSnapshot {
        return Err(RecvError::Corrupt(format!(
            "expected a MsgSnapshot, got {:?}",
            m.get_msg_type()
        )));
    }
    let _announced = read_u64(r)?;
    Ok(m)
}

/// Receives the chunks into `tmp`, checks them, fsyncs and renames to `path`.
fn receive_file(
    inner: &Inner,
    r: &mut impl Read,
    tmp: &Path,
    path: &Path,
) -> Result<(), RecvError> {
    crate::fileutil::create_dir_all(&inner.snap_dir).map_err(RecvError::Store)?;
    let mut file = crate::fileutil::private_file()
        .open(tmp)
        .map_err(RecvError::Store)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut crc = 0u32;
    let mut total = 0u64;
    loop {
        if inner.stopped.load(Ordering::Relaxed) {
            return Err(RecvError::Net(io::Error::other("transport stopped")));
        }
        let len = read_u32(r)? as usize;
        if len == 0 {
            break;
        }
        if len > MAX_CHUNK {
            return Err(RecvError::Corrupt(format!("snapshot chunk of {len} bytes")));
        }
        chunk.resize(len, 0);
        r.read_exact(&mut chunk).map_err(RecvError::Net)?;
        crc = crc32c::crc32c_append(crc, &chunk);
        total += len as u64;
        file.write_all(&chunk).map_err(RecvError::Store)?;
    }
    let sent_total = read_u64(r)?;
    let sent_crc = read_u32(r)?;
    if sent_total != total {
        return Err(RecvError::Corrupt(format!(
            "snapshot length mismatch: received {total} bytes, sender says {sent_total}"
        )));
    }
    if sent_crc != crc {
        return Err(RecvError::Corrupt(format!(
            "snapshot CRC mismatch: computed {crc:08x}, sender says {sent_crc:08x}"
        )));
    }
    file.sync_all().map_err(RecvError::Store)?;
    drop(file);
    std::fs::rename(tmp, path).map_err(RecvError::Store)?;
    File::open(&inner.snap_dir)
        .and_then(|d| d.sync_all())
        .map_err(RecvError::Store)?;
    Ok(())
}

/// The path a received snapshot for member `to` at `index` is stored at.
pub(crate) fn received_path(snap_dir: &Path, to: u64, index: u64) -> PathBuf {
    snap_dir.join(format!("{to}-{index}.snap.db"))
}
