//! `Wal`: the handle callers use. It frames records on the caller's thread and queues them
//! for the writer thread, which owns every file.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::frame::{frame_records, framed_len, Chain};
use crate::io::{select_backend, BackendChoice, BackendKind, WalIo};
use crate::limits::{
    QUEUE_REQUESTS_MAX, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use crate::record::{Record, HARD_STATE_PAYLOAD_BYTES, SNAPSHOT_PAYLOAD_BYTES};
use crate::scan::{recover, Replay, SegmentState};
use crate::segment::{create_segment, sync_directory, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::sys;
use crate::writer::{Request, Shared, Writer, WriterState};

/// How to open a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Size new segment files are preallocated to (64 MiB by default). An existing last
    /// segment keeps its size.
    pub segment_size: u64,
    /// Which disk backend to use.
    pub backend: BackendChoice,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: SEGMENT_BYTES_DEFAULT,
            backend: BackendChoice::Auto,
        }
    }
}

/// Counters since open, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Group-commit writes issued (each one vectored write).
    pub writes: u64,
    /// fdatasyncs issued for group commits (one per write).
    pub fsyncs: u64,
    /// Records made durable (including the state copies that start each segment).
    pub records: u64,
    /// Bytes made durable.
    pub bytes: u64,
    /// Segments created since open.
    pub segments_created: u64,
    /// Segments deleted by `release_before` since open.
    pub segments_released: u64,
}

/// Bytes of the hard-state and snapshot copies written at the start of every segment.
const STATE_COPIES_BYTES: u64 =
    (framed_len(HARD_STATE_PAYLOAD_BYTES) + framed_len(SNAPSHOT_PAYLOAD_BYTES)) as u64;

/// The write-ahead log. `Send + Sync`: share it (e.g. in an `Arc`) between any number of
/// appending tasks and threads; concurrent appends are committed together.
pub struct Wal {
    queue: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
    backend: BackendKind,
    fallback_reason: Option<String>,
    /// Largest framed record (or chunk) a fresh segment can take.
    record_capacity: usize,
    directory: PathBuf,
}

impl Wal {
    /// Opens (or creates) the log in `directory` and replays it. A torn tail is cut off
    /// (see `Replay::torn_tail`); damage anywhere else is `Error::Corrupt`.
    pub fn open(directory: impl AsRef<Path>, options: Options) -> Result<(Wal, Replay), Error> {
        let (io, fallback_reason) = select_backend(options.backend, sys::UringIo::new)?;
        Wal::open_inner(directory.as_ref(), &options, io, fallback_reason)
    }

    /// Like `open`, but on a caller-supplied disk backend (`options.backend` is ignored).
    /// Used to inject faults (see `FaultyIo`).
    pub fn open_with_io(
        directory: impl AsRef<Path>,
        options: Options,
        io: Box<dyn WalIo>,
    ) -> Result<(Wal, Replay), Error> {
        Wal::open_inner(directory.as_ref(), &options, io, None)
    }

    fn open_inner(
        directory: &Path,
        options: &Options,
        io: Box<dyn WalIo>,
        fallback_reason: Option<String>,
    ) -> Result<(Wal, Replay), Error> {
        let segment_bytes = options.segment_size;
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_bytes)
            || segment_bytes % 8 != 0
        {
            return Err(Error::InvalidOptions(format!(
                "segment_size {segment_bytes} must be a multiple of 8 within \
                 [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]"
            )));
        }
        create_directory(directory)?;
        let lock = lock_directory(directory)?;
        let (state, replay) = match recover(directory)? {
            Some(recovered) => {
                let hard_state = recovered.replay.hard_state;
                let snapshot = recovered.replay.snapshot;
                let state = WriterState {
                    directory: directory.to_path_buf(),
                    io,
                    segments: recovered.segments,
                    file: recovered.tail_file,
                    offset: recovered.tail_offset,
                    capacity: recovered.tail_capacity,
                    segment_bytes,
                    chain: recovered.chain,
                    last_index: recovered.last_index,
                    hard_state,
                    snapshot,
                };
                (state, recovered.replay)
            }
            None => (
                first_segment(directory, io, segment_bytes)?,
                Replay::default(),
            ),
        };
        let backend = state.io.kind();
        let shared = Arc::new(Shared::default());
        let (queue, requests) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let writer = Writer::new(state, Arc::clone(&shared));
        let handle = thread::Builder::new()
            .name("cairn-wal-writer".into())
            .spawn(move || writer.run(requests))
            .map_err(|e| Error::io("starting the writer thread", e))?;
        let record_capacity =
            (segment_bytes - SEGMENT_HEADER_BYTES as u64 - STATE_COPIES_BYTES) as usize;
        let wal = Wal {
            queue,
            shared,
            writer: Mutex::new(Some(handle)),
            lock: Mutex::new(Some(lock)),
            backend,
            fallback_reason,
            record_capacity,
            directory: directory.to_path_buf(),
        };
        Ok((wal, replay))
    }

    /// Appends `records` and resolves once they are durable (after the fdatasync of the
    /// group commit that carried them). Records are framed right away; they are queued
    /// when the future is first polled, so appends in flight at the same time are ordered
    /// among themselves in the order they reach the queue. Dropping the future does not
    /// withdraw records already queued.
    pub fn append(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let prepared = self.prepare(&records);
        let queue = self.queue.clone();
        async move {
            let (request, reply) = prepared?;
            queue.send(request).await.map_err(|_| Error::Closed)?;
            reply.await.map_err(|_| Error::Closed)?
        }
    }

    /// `append` for synchronous callers: blocks the thread until the records are durable.
    /// Safe to call from any thread (it does not need or use a tokio runtime).
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<(), Error> {
        block_on(self.append(records))
    }

    fn prepare(
        &self,
        records: &[Record],
    ) -> Result<(Request, oneshot::Receiver<Result<(), Error>>), Error> {
        self.check_usable()?;
        let chunks = frame_records(records, self.record_capacity, || self.shared.take_buffer())?;
        let (done, reply) = oneshot::channel();
        Ok((
            Request::Append {
                chunks,
                records: records.len() as u64,
                done,
            },
            reply,
        ))
    }

    fn check_usable(&self) -> Result<(), Error> {
        if let Some(error) = self.shared.poisoned() {
            return Err(error);
        }
        if self.writer.lock().is_none() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Resolves once every append queued before it is durable (a barrier).
    pub async fn sync(&self) -> Result<(), Error> {
        self.check_usable()?;
        let (done, reply) = oneshot::channel();
        self.queue
            .send(Request::Sync { done })
            .await
            .map_err(|_| Error::Closed)?;
        reply.await.map_err(|_| Error::Closed)?
    }

    /// `sync` for synchronous callers.
    pub fn sync_blocking(&self) -> Result<(), Error> {
        block_on(self.sync())
    }

    /// Deletes the oldest segments whose entries all lie before `index` (never the segment
    /// being written). A snapshot marker at `index - 1` or later must already be in the log,
    /// otherwise `Error::ReleaseBeyondSnapshot`. Returns how many segments were deleted.
    pub fn release_before(&self, index: u64) -> Result<usize, Error> {
        self.check_usable()?;
        let (done, reply) = oneshot::channel();
        block_on(async {
            self.queue
                .send(Request::Release { index, done })
                .await
                .map_err(|_| Error::Closed)?;
            reply.await.map_err(|_| Error::Closed)?
        })
    }

    /// Writes what is queued, stops the writer thread and releases the directory lock.
    /// Later calls return `Error::Closed`; a poisoned log reports its poison here too.
    pub fn close(&self) -> Result<(), Error> {
        let Some(handle) = self.writer.lock().take() else {
            return Err(Error::Closed);
        };
        let (done, reply) = oneshot::channel();
        let outcome = block_on(async {
            self.queue
                .send(Request::Close { done })
                .await
                .map_err(|_| Error::Closed)?;
            reply.await.map_err(|_| Error::Closed)?
        });
        let joined = handle.join();
        self.lock.lock().take();
        if joined.is_err() {
            return Err(Error::io(
                "joining the writer thread",
                std::io::Error::other("writer panicked"),
            ));
        }
        outcome
    }

    /// The backend in use (for logs and metrics).
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Why `BackendChoice::Auto` fell back to pwritev, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Counters since open.
    pub fn stats(&self) -> Stats {
        let counters = &self.shared.counters;
        Stats {
            writes: counters.writes.load(Ordering::Relaxed),
            fsyncs: counters.fsyncs.load(Ordering::Relaxed),
            records: counters.records.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            segments_created: counters.segments_created.load(Ordering::Relaxed),
            segments_released: counters.segments_released.load(Ordering::Relaxed),
        }
    }

    /// The log's directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if self.writer.lock().is_some() {
            let _ = self.close();
        }
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("directory", &self.directory)
            .field("backend", &self.backend)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Creates the log directory if needed and makes its creation durable (fsync of the
/// parent), so acknowledged records can never vanish with a directory entry.
fn create_directory(directory: &Path) -> Result<(), Error> {
    if directory.is_dir() {
        return Ok(());
    }
    let context = || format!("creating {}", directory.display());
    // etcd's PrivateDirMode: only the owner reads the log.
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(directory)
        .map_err(|e| Error::io(context(), e))?;
    if let Some(parent) = directory.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_directory(parent).map_err(|e| Error::io(context(), e))?;
    }
    Ok(())
}

/// Takes the directory's `LOCK` file so two logs never write the same directory.
fn lock_directory(directory: &Path) -> Result<File, Error> {
    let path = directory.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    match sys::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(Error::Locked(format!(
            "{} is locked by another open log",
            path.display()
        ))),
        Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

/// Creates segment 0 of an empty log.
fn first_segment(
    directory: &Path,
    mut io: Box<dyn WalIo>,
    segment_bytes: u64,
) -> Result<WriterState, Error> {
    let chain = Chain {
        next_sequence: 1,
        previous_crc: 0,
    };
    let header = SegmentHeader {
        sequence: 0,
        first_index: 1,
        chain,
        capacity: segment_bytes,
    };
    let (file, handle) = create_segment(directory, &header, io.as_mut()).map_err(|e| {
        Error::io(
            format!("creating the first segment in {}", directory.display()),
            e,
        )
    })?;
    Ok(WriterState {
        directory: directory.to_path_buf(),
        io,
        segments: vec![SegmentState {
            file,
            max_entry_index: None,
        }],
        file: handle,
        offset: SEGMENT_HEADER_BYTES as u64,
        capacity: segment_bytes,
        segment_bytes,
        chain,
        last_index: 0,
        hard_state: None,
        snapshot: None,
    })
}

/// Runs `future` on the current thread, parking between polls. Unlike tokio's blocking
/// helpers it works inside and outside a runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}
