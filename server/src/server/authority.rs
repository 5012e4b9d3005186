//! Accepting HTTP/2 requests whose `:authority` is not an authority, as etcd does.
//!
//! Go's clientv3 3.4 (and etcdctl 3.4) open one gRPC connection per endpoint whose
//! `:authority` is the endpoint URL itself, `http://127.0.0.1:2379`. etcd's grpc-go server
//! does not look at it. h2 parses it with `http::uri::Authority` and resets the stream with
//! PROTOCOL_ERROR when that fails (`h2/src/server.rs`, `Peer::convert_poll_message`), and
//! neither h2, hyper nor tonic has an option to relax that.
//!
//! [`AuthorityFix`] wraps an accepted connection (plain TCP, or the decrypted side of a TLS
//! stream) and fixes the request header blocks before h2 reads them:
//!
//! - It follows the client's bytes up to the first HEADERS block of the connection and
//!   decodes it (HPACK). When its `:authority` parses, or there is none, or the connection
//!   is not HTTP/2 (HTTP/1.1 shares the port), everything is handed to h2 unchanged and the
//!   wrapper steps aside: later reads go straight to the socket. Normal clients pay for the
//!   decoding of one header block per connection, nothing per request.
//! - Otherwise (a Go 3.4 client: its connection keeps one authority) every later header
//!   block of that connection is decoded with a decoder that mirrors the client's dynamic
//!   table and re-encoded for h2 as literals without indexing, with the scheme (and any
//!   path) cut from `:authority` (the header is dropped when even that does not parse).
//!   h2's dynamic table then stays empty, so the two HPACK contexts never disagree. Other
//!   frames are forwarded as they arrive, without buffering their payloads.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Every HTTP/2 peer accepts frames of this size (the smallest SETTINGS_MAX_FRAME_SIZE).
const OUT_FRAME: usize = 16_384;
/// A header block larger than this is not ours to buffer: before the decision the
/// connection is handed to h2 untouched, after it the connection is closed.
const MAX_BLOCK: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;

/// Wraps every connection of a listener's accept stream in [`AuthorityFix`].
pub(crate) fn fix_incoming<S, T, E>(incoming: S) -> impl Stream<Item = Result<AuthorityFix<T>, E>>
where
    S: Stream<Item = Result<T, E>>,
{
    incoming.map(|r| r.map(AuthorityFix::new))
}

/// An accepted connection whose request `:authority` is fixed before h2 sees it.
pub(crate) struct AuthorityFix<T> {
    io: T,
    /// `None` once the connection needs nothing more: reads go straight to `io`.
    fix: Option<Box<Fixer>>,
}

impl<T> AuthorityFix<T> {
    pub(crate) fn new(io: T) -> Self {
        AuthorityFix {
            io,
            fix: Some(Box::new(Fixer::new())),
        }
    }
}

impl<T: Connected> Connected for AuthorityFix<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// This many bytes of the client preface seen.
    Preface(usize),
    /// Expecting a frame header.
    Frame,
    /// Forwarding this many more payload bytes of a frame that is not a header block.
    Raw(usize),
}

/// A header block being collected (HEADERS, then CONTINUATION until END_HEADERS).
struct Block {
    stream: u32,
    flags: u8,
    priority: [u8; 5],
    fragment: BytesMut,
    /// The frames as received, handed over unchanged if the connection needs no fix.
    raw: BytesMut,
}

struct Fixer {
    phase: Phase,
    /// Set once a header block had an `:authority` h2 refuses.
    rewrite: bool,
    /// Decided that nothing needs fixing: once `out` and `inbuf` are handed over, the
    /// wrapper steps aside.
    done: bool,
    decoder: loona_hpack::Decoder<'static>,
    block: Option<Block>,
    /// Bytes read from the client and not yet processed.
    inbuf: BytesMut,
    /// Bytes ready for h2.
    out: BytesMut,
    /// What the socket gave, before it is appended to `inbuf`.
    scratch: Vec<u8>,
    /// A re-encoded header block.
    enc: Vec<u8>,
}

impl Fixer {
    fn new() -> Fixer {
        Fixer {
            phase: Phase::Preface(0),
            rewrite: false,
            done: false,
            decoder: loona_hpack::Decoder::new(),
            block: None,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            scratch: Vec::new(),
            enc: Vec::new(),
        }
    }

    /// Hands everything over unchanged and stops looking.
    fn step_aside(&mut self) {
        if let Some(b) = self.block.take() {
            self.out.extend_from_slice(&b.raw);
        }
        let rest = self.inbuf.split();
        self.out.extend_from_slice(&rest);
        self.done = true;
    }

    /// Moves what can be processed from `inbuf` to `out`.
    fn process(&mut self) -> io::Result<()> {
        while !self.done && !self.inbuf.is_empty() {
            match self.phase {
                Phase::Preface(seen) => {
                    let want = &PREFACE[seen..];
                    let n = want.len().min(self.inbuf.len());
                    if self.inbuf[..n] != want[..n] {
                        // Not HTTP/2 (HTTP/1.1 shares the port): nothing to do.
                        self.step_aside();
                        return Ok(());
                    }
                    let chunk = self.inbuf.split_to(n);
                    self.out.extend_from_slice(&chunk);
                    self.phase = if seen + n == PREFACE.len() {
                        Phase::Frame
                    } else {
                        Phase::Preface(seen + n)
                    };
                }
                Phase::Raw(left) => {
                    let n = left.min(self.inbuf.len());
                    let chunk = self.inbuf.split_to(n);
                    self.out.extend_from_slice(&chunk);
                    self.phase = if n == left {
                        Phase::Frame
                    } else {
                        Phase::Raw(left - n)
                    };
                }
                Phase::Frame => {
                    if self.inbuf.len() < FRAME_HEAD {
                        return Ok(());
                    }
                    let h = &self.inbuf[..FRAME_HEAD];
                    let len =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    let (kind, flags) = (h[3], h[4]);
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    let header_block =
                        kind == HEADERS || (kind == CONTINUATION && self.block.is_some());
                    if !header_block {
                        if self.block.is_some() {
                            // A frame inside a header block: h2 will refuse the connection.
                            return self.malformed("frame interleaved in a header block");
                        }
                        let head = self.inbuf.split_to(FRAME_HEAD);
                        self.out.extend_from_slice(&head);
                        self.phase = Phase::Raw(len);
                        continue;
                    }
                    let collected = self.block.as_ref().map_or(0, |b| b.raw.len());
                    if len + collected > MAX_BLOCK {
                        return self.malformed("header block too large");
                    }
                    if self.inbuf.len() < FRAME_HEAD + len {
                        self.inbuf.reserve(FRAME_HEAD + len - self.inbuf.len());
                        return Ok(());
                    }
                    let frame = self.inbuf.split_to(FRAME_HEAD + len);
                    self.header_frame(kind, flags, stream, &frame)?;
                }
            }
        }
        Ok(())
    }

    /// Something h2 will refuse anyway: before the decision, it gets the bytes as they
    /// came; after it, the connection is closed.
    fn malformed(&mut self, what: &str) -> io::Result<()> {
        if self.rewrite {
            return Err(io::Error::new(io::ErrorKind::InvalidData, what.to_string()));
        }
        self.step_aside();
        Ok(())
    }

    fn header_frame(&mut self, kind: u8, flags: u8, stream: u32, frame: &[u8]) -> io::Result<()> {
        let payload = &frame[FRAME_HEAD..];
        if kind == HEADERS {
            if self.block.is_some() {
                return self.malformed("HEADERS inside a header block");
            }
            let mut start = 0;
            let mut end = payload.len();
            if flags & PADDED != 0 {
                let pad = usize::from(payload.first().copied().unwrap_or(0));
                start = 1;
                if pad + start > end {
                    return self.malformed("bad padding");
                }
                end -= pad;
            }
            let mut priority = [0u8; 5];
            if flags & PRIORITY != 0 {
                if start + 5 > end {
                    return self.malformed("bad priority");
                }
                priority.copy_from_slice(&payload[start..start + 5]);
                start += 5;
            }
            let mut raw = BytesMut::new();
            if !self.rewrite {
                raw.extend_from_slice(frame);
            }
            self.block = Some(Block {
                stream,
                flags: flags & (END_STREAM | PRIORITY),
                priority,
                fragment: BytesMut::from(&payload[start..end]),
                raw,
            });
        } else {
            let rewrite = self.rewrite;
            let Some(b) = self.block.as_mut().filter(|b| b.stream == stream) else {
                return self.malformed("CONTINUATION on another stream");
            };
            b.fragment.extend_from_slice(payload);
            if !rewrite {
                b.raw.extend_from_slice(frame);
            }
        }
        if flags & END_HEADERS != 0 {
            self.end_block()?;
        }
        Ok(())
    }

    /// A whole header block: decode it, and either hand it over unchanged (and step aside)
    /// or re-encode it.
    fn end_block(&mut self) -> io::Result<()> {
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let mut encoded = std::mem::take(&mut self.enc);
        encoded.clear();
        let mut refused = false;
        let decoded = self.decoder.decode_with_cb(&block.fragment, |name, value| {
            let value = if &*name == b":authority" {
                match fixed_authority(&value) {
                    Fixed::Valid => value,
                    Fixed::Replace(v) => {
                        refused = true;
                        Cow::Owned(v.to_vec())
                    }
                    Fixed::Drop => {
                        refused = true;
                        return;
                    }
                }
            } else {
                value
            };
            encode_literal(&mut encoded, &name, &value);
        });
        if let Err(e) = decoded {
            self.enc = encoded;
            self.block = Some(block);
            return self.malformed(&format!("header block does not decode: {e:?}"));
        }
        if !self.rewrite && !refused {
            self.enc = encoded;
            self.block = Some(block);
            self.step_aside();
            return Ok(());
        }
        if !self.rewrite {
            tracing::debug!(
                "client sends an :authority that is not one (a Go 3.4 client?); fixing this connection's requests"
            );
        }
        self.rewrite = true;
        self.write_block(&block, &encoded);
        self.enc = encoded;
        Ok(())
    }

    /// The re-encoded block as HEADERS (+ CONTINUATION) frames.
    fn write_block(&mut self, block: &Block, encoded: &[u8]) {
        let prio: &[u8] = if block.flags & PRIORITY != 0 {
            &block.priority
        } else {
            &[]
        };
        let mut rest = encoded;
        let mut first = true;
        loop {
            let room = if first {
                OUT_FRAME - prio.len()
            } else {
                OUT_FRAME
            };
            let n = room.min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            let last = tail.is_empty();
            let (kind, mut flags, head_len) = if first {
                (HEADERS, block.flags, prio.len())
            } else {
                (CONTINUATION, 0, 0)
            };
            if last {
                flags |= END_HEADERS;
            }
            let len = head_len + chunk.len();
            self.out.put_uint(len as u64, 3);
            self.out.put_u8(kind);
            self.out.put_u8(flags);
            self.out.put_u32(block.stream);
            if first {
                self.out.extend_from_slice(prio);
            }
            self.out.extend_from_slice(chunk);
            first = false;
            rest = tail;
            if last {
                return;
            }
        }
    }
}

enum Fixed<'a> {
    Valid,
    Replace(&'a [u8]),
    Drop,
}

/// What h2 will accept in place of this `:authority`.
fn fixed_authority(value: &[u8]) -> Fixed<'_> {
    if http::uri::Authority::try_from(value).is_ok() {
        return Fixed::Valid;
    }
    let Some(at) = value.windows(3).position(|w| w == b"://") else {
        return Fixed::Drop;
    };
    let rest = &value[at + 3..];
    let host = rest.split(|&c| c == b'/').next().unwrap_or(rest);
    if !host.is_empty() && http::uri::Authority::try_from(host).is_ok() {
        Fixed::Replace(host)
    } else {
        Fixed::Drop
    }
}

/// HPACK "literal header field without indexing — new name", strings not Huffman-coded
/// (RFC 7541 §6.2.2).
fn encode_literal(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    dst.push(0);
    for s in [name, value] {
        encode_int(dst, s.len(), 7, 0);
        dst.extend_from_slice(s);
    }
}

/// HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above it.
fn encode_int(dst: &mut Vec<u8>, mut v: usize, prefix: u8, high: u8) {
    let max = (1usize << prefix) - 1;
    if v < max {
        dst.push(high | v as u8);
        return;
    }
    dst.push(high | max as u8);
    v -= max;
    while v >= 128 {
        dst.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    dst.push(v as u8);
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let Some(f) = this.fix.as_mut() else {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            };
            if !f.out.is_empty() {
                let n = f.out.len().min(buf.remaining());
                buf.put_slice(&f.out[..n]);
                f.out.advance(n);
                if f.done && f.out.is_empty() {
                    this.fix = None;
                }
                return Poll::Ready(Ok(()));
            }
            if f.done {
                this.fix = None;
                continue;
            }
            if f.scratch.len() < READ_CHUNK {
                f.scratch.resize(READ_CHUNK, 0);
            }
            let mut rb = ReadBuf::new(&mut f.scratch[..]);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            if n == 0 {
                // End of stream: whatever is unprocessed goes to h2 as it came.
                f.step_aside();
                if f.out.is_empty() {
                    this.fix = None;
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            f.inbuf.extend_from_slice(&f.scratch[..n]);
            f.process()?;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Yields its bytes a few at a time, to cut frames and the preface anywhere.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self
                .step
                .min(self.data.len() - self.pos)
                .min(buf.remaining());
            let (pos, end) = (self.pos, self.pos + n);
            buf.put_slice(&self.data[pos..end]);
            self.pos = end;
            Poll::Ready(Ok(()))
        }
    }

    fn frame(dst: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        dst.extend_from_slice(&len.to_be_bytes()[1..]);
        dst.push(kind);
        dst.push(flags);
        dst.extend_from_slice(&stream.to_be_bytes());
        dst.extend_from_slice(payload);
    }

    fn request<'a>(authority: &'a [u8], path: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
        vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
            (b"user-agent", b"grpc-go/1.26.0"),
            (b"te", b"trailers"),
        ]
    }

    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn frames(mut b: &[u8]) -> Vec<Frame> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            v.push(Frame {
                kind: b[3],
                flags: b[4],
                stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                payload: b[9..9 + len].to_vec(),
            });
            b = &b[9 + len..];
        }
        v
    }

    async fn through(data: Vec<u8>, step: usize) -> Vec<u8> {
        let mut c = AuthorityFix::new(Trickle { data, pos: 0, step });
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        out
    }

    /// A Go 3.4 connection: the client's encoder indexes, later requests refer to its
    /// dynamic table; padding, priority and CONTINUATION on the way in.
    fn go34_connection() -> Vec<u8> {
        let mut enc = loona_hpack::Encoder::new();
        let mut c = PREFACE.to_vec();
        frame(&mut c, 0x4, 0, 0, &[]); // SETTINGS
        frame(&mut c, 0x8, 0, 0, &[0, 0, 0x40, 0]); // WINDOW_UPDATE
        let b1 = enc.encode(request(
            b"http://127.0.0.1:2379",
            b"/etcdserverpb.Maintenance/Status",
        ));
        frame(&mut c, HEADERS, END_HEADERS, 1, &b1);
        frame(&mut c, 0x0, END_STREAM, 1, &[0, 0, 0, 0, 0]);
        // Second request: padded, with priority, the block cut in two.
        let b3 = enc.encode(request(
            b"http://127.0.0.1:2379",
            b"/etcdserverpb.Maintenance/HashKV",
        ));
        let (p1, p2) = b3.split_at(b3.len() / 2);
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 15]);
        payload.extend_from_slice(p1);
        payload.extend_from_slice(&[0, 0, 0]);
        frame(&mut c, HEADERS, PADDED | PRIORITY | END_STREAM, 3, &payload);
        frame(&mut c, CONTINUATION, END_HEADERS, 3, p2);
        c
    }

    #[tokio::test]
    async fn scheme_in_authority_is_cut_on_every_request() {
        let input = go34_connection();
        for step in [1, 7, 4096] {
            let out = through(input.clone(), step).await;
            assert!(out.starts_with(PREFACE));
            let fs = frames(&out[PREFACE.len()..]);
            let kinds: Vec<(u8, u32)> = fs.iter().map(|f| (f.kind, f.stream)).collect();
            assert_eq!(kinds, vec![(4, 0), (8, 0), (1, 1), (0, 1), (1, 3)]);
            assert_eq!(fs[1].payload, [0, 0, 0x40, 0]);
            assert_eq!(
                (fs[3].flags, &fs[3].payload[..]),
                (END_STREAM, &[0u8; 5][..])
            );
            assert_eq!(fs[2].flags, END_HEADERS);
            assert_eq!(fs[4].flags, END_HEADERS | END_STREAM | PRIORITY);
            assert_eq!(fs[4].payload[..5], [0, 0, 0, 0, 15]);
            // Each block decodes on its own: h2's dynamic table is never used.
            for (f, path) in [
                (&fs[2], &b"/etcdserverpb.Maintenance/Status"[..]),
                (&fs[4], &b"/etcdserverpb.Maintenance/HashKV"[..]),
            ] {
                let start = if f.flags & PRIORITY != 0 { 5 } else { 0 };
                let got = loona_hpack::Decoder::new()
                    .decode(&f.payload[start..])
                    .unwrap();
                let want: Vec<(Vec<u8>, Vec<u8>)> = request(b"127.0.0.1:2379", path)
                    .into_iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect();
                assert_eq!(got, want);
            }
        }
    }

    #[tokio::test]
    async fn valid_authority_passes_unchanged_and_the_wrapper_steps_aside() {
        let mut enc = loona_hpack::Encoder::new();
        let mut c = PREFACE.to_vec();
        frame(&mut c, 0x4, 0, 0, &[]);
        for (stream, path) in [(1, &b"/a"[..]), (3, b"/b"), (5, b"/c")] {
            let b = enc.encode(request(b"127.0.0.1:2379", path));
            frame(&mut c, HEADERS, END_HEADERS, stream, &b);
            frame(&mut c, 0x0, END_STREAM, stream, b"hello");
        }
        for step in [1, 5, 4096] {
            let out = through(c.clone(), step).await;
            assert_eq!(out, c);
        }
        // Stepped aside after the first block: the fixer is gone.
        let mut conn = AuthorityFix::new(Trickle {
            data: c.clone(),
            pos: 0,
            step: 4096,
        });
        let mut out = vec![0u8; c.len()];
        conn.read_exact(&mut out).await.unwrap();
        assert!(conn.fix.is_none());
    }

    #[tokio::test]
    async fn http1_passes_unchanged() {
        let req = b"GET /health HTTP/1.1\r\nHost: http://127.0.0.1:2379\r\n\r\n".to_vec();
        let out = through(req.clone(), 3).await;
        assert_eq!(out, req);
    }

    #[tokio::test]
    async fn large_rewritten_block_leaves_in_continuations() {
        let mut enc = loona_hpack::Encoder::new();
        let big = vec![b'x'; 40_000];
        let mut hs = request(b"http://127.0.0.1:2379", b"/p");
        hs.push((b"x-big", &big));
        let b = enc.encode(hs.clone());
        let mut c = PREFACE.to_vec();
        let (p1, p2) = b.split_at(20_000);
        frame(&mut c, HEADERS, 0, 1, p1);
        frame(&mut c, CONTINUATION, END_HEADERS, 1, p2);
        let out = through(c, 1000).await;
        let fs = frames(&out[PREFACE.len()..]);
        assert!(fs.len() >= 3);
        assert!(fs
            .iter()
            .all(|f| f.payload.len() <= OUT_FRAME && f.stream == 1));
        assert_eq!(fs[0].kind, HEADERS);
        assert!(fs[1..].iter().all(|f| f.kind == CONTINUATION));
        let ends: Vec<bool> = fs.iter().map(|f| f.flags & END_HEADERS != 0).collect();
        assert_eq!(ends.iter().filter(|e| **e).count(), 1);
        assert!(ends[ends.len() - 1]);
        let block: Vec<u8> = fs.iter().flat_map(|f| f.payload.clone()).collect();
        let got = loona_hpack::Decoder::new().decode(&block).unwrap();
        assert_eq!(got[3], (b":authority".to_vec(), b"127.0.0.1:2379".to_vec()));
        assert_eq!(got[7], (b"x-big".to_vec(), big));
    }

    #[test]
    fn authorities() {
        let cut = |v: &[u8]| match fixed_authority(v) {
            Fixed::Valid => "valid".to_string(),
            Fixed::Replace(r) => String::from_utf8(r.to_vec()).unwrap(),
            Fixed::Drop => "drop".to_string(),
        };
        assert_eq!(cut(b"127.0.0.1:2379"), "valid");
        assert_eq!(cut(b"localhost"), "valid");
        assert_eq!(cut(b"http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(cut(b"https://[::1]:2379/"), "[::1]:2379");
        assert_eq!(cut(b"unix://h:1/x/y"), "h:1");
        assert_eq!(cut(b"#initially=[http://127.0.0.1:2379]"), "drop");
        assert_eq!(cut(b"a b"), "drop");
    }

    #[test]
    fn hpack_integers() {
        let enc = |v| {
            let mut d = Vec::new();
            encode_int(&mut d, v, 5, 0);
            d
        };
        // RFC 7541 C.1.1 and C.1.2.
        assert_eq!(enc(10), [10]);
        assert_eq!(enc(1337), [31, 154, 10]);
        assert_eq!(enc(31), [31, 0]);
    }
}
