//! Byte layouts of the peer protocol (described in the module docs of `transport`): the
//! preamble, the handshake reply, length-prefixed frames and peer URL parsing.

use std::io;

use bytes::{Bytes, BytesMut};
use protobuf::{CodedOutputStream, Message as _};
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::stream::{self, Stream};
use super::Error;

/// First bytes of every peer connection.
pub(crate) const MAGIC: &[u8; 8] = b"CAIRNP01";
/// magic + kind + from + to + cluster.
pub(crate) const PREAMBLE_LEN: usize = 8 + 1 + 8 + 8 + 8;
/// Largest frame accepted (a raft message, the members answer, a snapshot chunk).
pub(crate) const MAX_FRAME: usize = 512 << 20;

/// Handshake statuses.
pub(crate) const STATUS_OK: u8 = 0;
pub(crate) const STATUS_CLUSTER_MISMATCH: u8 = 1;
pub(crate) const STATUS_WRONG_MEMBER: u8 = 2;
pub(crate) const STATUS_REMOVED: u8 = 3;
pub(crate) const STATUS_BAD_PREAMBLE: u8 = 4;
pub(crate) const STATUS_NOT_MEMBER: u8 = 5;
/// Largest members query (the asker's peer URLs).
pub(crate) const MAX_QUERY: usize = 64 << 10;

/// Reason sent with [`STATUS_REMOVED`].
pub(crate) const REASON_REMOVED: &str = "the member has been permanently removed from the cluster";

/// What a connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A one-way stream of raft messages.
    Raft = 1,
    /// One raft snapshot with its backend file.
    Snapshot = 2,
    /// Ask for the member list.
    Members = 3,
}

/// The 33 bytes that open a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Preamble {
    pub(crate) kind: Kind,
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) cluster: u64,
}

impl Preamble {
    pub(crate) fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut b = [0u8; PREAMBLE_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8] = self.kind as u8;
        b[9..17].copy_from_slice(&self.from.to_be_bytes());
        b[17..25].copy_from_slice(&self.to.to_be_bytes());
        b[25..33].copy_from_slice(&self.cluster.to_be_bytes());
        b
    }

    /// Decodes a preamble; the error is the reason sent back with [`STATUS_BAD_PREAMBLE`].
    pub(crate) fn decode(b: &[u8; PREAMBLE_LEN]) -> Result<Preamble, &'static str> {
        if &b[..8] != MAGIC {
            return Err("bad preamble: unknown magic");
        }
        let kind = match b[8] {
            1 => Kind::Raft,
            2 => Kind::Snapshot,
            3 => Kind::Members,
            _ => return Err("bad preamble: unknown connection kind"),
        };
        let u64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        Ok(Preamble {
            kind,
            from: u64_at(9),
            to: u64_at(17),
            cluster: u64_at(25),
        })
    }
}

/// `status u8` + `len u16 BE` + reason.
pub(crate) fn encode_reply(status: u8, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(u16::MAX as usize)];
    let mut b = Vec::with_capacity(3 + reason.len());
    b.push(status);
    b.extend_from_slice(&(reason.len() as u16).to_be_bytes());
    b.extend_from_slice(reason);
    b
}

/// The reply refusing a removed member: the reason, then who refuses.
pub(crate) fn encode_removed_reply(member: u64, cluster: u64) -> Vec<u8> {
    let mut b = encode_reply(STATUS_REMOVED, REASON_REMOVED);
    b.extend_from_slice(&member.to_be_bytes());
    b.extend_from_slice(&cluster.to_be_bytes());
    b
}

/// Reads a handshake reply.
pub(crate) async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u8, String)> {
    let mut head = [0u8; 3];
    r.read_exact(&mut head).await?;
    let len = u16::from_be_bytes([head[1], head[2]]) as usize;
    let mut reason = vec![0u8; len];
    r.read_exact(&mut reason).await?;
    Ok((head[0], String::from_utf8_lossy(&reason).into_owned()))
}

/// Reads the `member u64` + `cluster u64` that follow a status 3 reply.
pub(crate) async fn read_removed_by<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u64, u64)> {
    let mut b = [0u8; 16];
    r.read_exact(&mut b).await?;
    let member = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    let cluster = u64::from_be_bytes(b[8..].try_into().expect("8 bytes"));
    Ok((member, cluster))
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_small_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes(head) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max} byte limit"),
        ));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).await?;
    Ok(b)
}

/// Appends `len u32 BE` + the protobuf encoding of `m` to `buf`.
pub(crate) fn encode_message(m: &Message, buf: &mut Vec<u8>) -> Result<(), Error> {
    let start = buf.len();
    let size = m.compute_size();
    buf.extend_from_slice(&size.to_be_bytes());
    let res = (|| {
        let mut os = CodedOutputStream::vec(buf);
        m.write_to_with_cached_sizes(&mut os)?;
        os.flush()
    })();
    if let Err(e) = res {
        buf.truncate(start);
        return Err(Error::Codec(e));
    }
    if buf.len() - start - 4 != size as usize {
        buf.truncate(start);
        return Err(Error::Protocol(
            "encoded raft message size differs from its computed size",
        ));
    }
    Ok(())
}

/// Decodes a raft message; its byte fields share `frame`.
pub(crate) fn decode_message(frame: &Bytes) -> Result<Message, Error> {
    Message::parse_from_carllerche_bytes(frame).map_err(Error::Codec)
}

/// Writes one `len u32 BE` + payload frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut b = Vec::with_capacity(4 + payload.len());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(payload);
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads one frame; `None` on a clean end of stream before its first byte.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Bytes>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME} byte limit"),
        ));
    }
    let mut buf = BytesMut::with_capacity(len);
    let mut take = r.take(len as u64);
    while buf.len() < len {
        if take.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(buf.freeze()))
}

/// `host:port` of a peer URL (`http://host:port[/...]`, `https://…` or a bare
/// `host:port`), and whether it is https.
pub(crate) fn peer_addr(url: &str) -> Result<(String, bool), Error> {
    let (rest, https) = if let Some(r) = url.strip_prefix("http://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else if url.contains("://") {
        return Err(Error::Url {
            url: url.to_string(),
            why: "unsupported scheme (only http:// and https:// are)",
        });
    } else {
        (url, false)
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !has_port {
        return Err(Error::Url {
            url: url.to_string(),
            why: "expected host:port",
        });
    }
    Ok((host_port.to_string(), https))
}

/// Opens a connection to `url` (with TLS for an https URL, which needs `tls`), sends `pre`
/// and reads the reply. A non-zero status is returned as [`Error::Refused`], or
/// [`Error::Removed`] for status 3 (the connection is dropped).
pub(crate) async fn handshake(
    url: &str,
    pre: Preamble,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    connect_timeout: std::time::Duration,
    reply_timeout: std::time::Duration,
) -> Result<Stream, Error> {
    handshake_with(url, pre, None, tls, connect_timeout, reply_timeout).await
}

/// [`handshake`], writing the frame `query` right after the preamble (a members query).
pub(crate) async fn handshake_with(
    url: &str,
    pre: Preamble,
    query: Option<&[u8]>,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    connect_timeout: std::time::Duration,
    reply_timeout: std::time::Duration,
) -> Result<Stream, Error> {
    let (addr, https) = peer_addr(url)?;
    let tls = match (https, tls) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => {
            return Err(Error::Url {
                url: url.to_string(),
                why: "an https peer URL, but this member has no peer TLS (--peer-cert-file and \
                      --peer-key-file, or --peer-auto-tls)",
            })
        }
    };
    let mut s = stream::dial(&addr, tls, connect_timeout, reply_timeout).await?;
    let mut hello = pre.encode().to_vec();
    if let Some(q) = query {
        hello.extend_from_slice(&(q.len() as u32).to_be_bytes());
        hello.extend_from_slice(q);
    }
    let (status, reason, removed_by) = tokio::time::timeout(reply_timeout, async {
        s.write_all(&hello).await?;
        s.flush().await?;
        let (status, reason) = read_reply(&mut s).await?;
        let by = if status == STATUS_REMOVED {
            // An older member sends nothing after the reason: an unknown refuser.
            read_removed_by(&mut s).await.ok()
        } else {
            None
        };
        io::Result::Ok((status, reason, by))
    })
    .await
    .map_err(|_| Error::Timeout("waiting for the handshake reply"))??;
    if status == STATUS_REMOVED {
        let (member, cluster) = removed_by.unwrap_or((0, 0));
        return Err(Error::Removed { member, cluster });
    }
    if status != STATUS_OK {
        return Err(Error::Refused { status, reason });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_round_trips_and_rejects_garbage() {
        let p = Preamble {
            kind: Kind::Snapshot,
            from: 0x0102_0304_0506_0708,
            to: 9,
            cluster: u64::MAX,
        };
        let b = p.encode();
        assert_eq!(&b[..8], b"CAIRNP01");
        assert_eq!(b[8], 2);
        assert_eq!(&b[9..17], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Preamble::decode(&b), Ok(p));
        let mut bad = b;
        bad[0] = b'X';
        assert!(Preamble::decode(&bad).is_err());
        let mut bad = b;
        bad[8] = 7;
        assert!(Preamble::decode(&bad).is_err());
    }

    #[test]
    fn peer_urls() {
        let a = |s: &str| peer_addr(s).unwrap();
        assert_eq!(a("http://127.0.0.1:2380"), ("127.0.0.1:2380".into(), false));
        assert_eq!(a("http://[::1]:2380/"), ("[::1]:2380".into(), false));
        assert_eq!(a("localhost:1"), ("localhost:1".into(), false));
        assert_eq!(a("https://127.0.0.1:2380"), ("127.0.0.1:2380".into(), true));
        assert!(peer_addr("unix://x").is_err());
        assert!(peer_addr("http://127.0.0.1").is_err());
        assert!(peer_addr("http://:80").is_err());
    }

    #[tokio::test]
    async fn frames_and_messages_round_trip() {
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.index = 77;
        m.mut_entries().push(raft::eraftpb::Entry {
            data: Bytes::from_static(b"payload"),
            ..Default::default()
        });
        let mut buf = Vec::new();
        encode_message(&m, &mut buf).unwrap();
        encode_message(&m, &mut buf).unwrap();
        let mut r = &buf[..];
        for _ in 0..2 {
            let f = read_frame(&mut r).await.unwrap().unwrap();
            assert_eq!(decode_message(&f).unwrap(), m);
        }
        assert!(read_frame(&mut r).await.unwrap().is_none());
        // A frame cut short is an error, not a clean end.
        let mut r = &buf[..buf.len() / 2 - 1];
        assert!(read_frame(&mut r).await.is_err());
    }
}
