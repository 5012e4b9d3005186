//! The byte streams under the protocol: plain TCP, or TLS over it (https peer URLs and
//! listeners). TLS is put on at the two ends only — [`accept_tls`] on an https listener,
//! [`dial`] for an `https://` URL — so the protocol code reads and writes a [`Stream`]
//! either way. Snapshot transfers run on blocking threads with a [`BlockingStream`]: the
//! same connection (and, for TLS, the same session) in blocking mode.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Error;

/// The peer port's TLS (`--peer-cert-file`… or `--peer-auto-tls`).
#[derive(Clone)]
pub(crate) struct PeerTls {
    /// For https listeners.
    pub server: Arc<rustls::ServerConfig>,
    /// For dialing https peer URLs.
    pub client: Arc<rustls::ClientConfig>,
    /// Inbound certificates are verified against a CA (`--peer-trusted-ca-file`): a
    /// connection that presented one proved who it is.
    pub verifies_peers: bool,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// A connection to or from a peer.
pub(crate) enum Stream {
    Plain(TcpStream),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The other side's certificate, when this is a TLS connection on which it presented
    /// one (verified when the configuration has a CA).
    pub(crate) fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            Stream::Plain(_) => None,
            Stream::Server(s) => s.get_ref().1.peer_certificates()?.first(),
            Stream::Client(s) => s.get_ref().1.peer_certificates()?.first(),
        }
    }

    /// The same connection in blocking mode, with `timeout` on each read and write.
    pub(crate) fn into_blocking(self, timeout: Duration) -> io::Result<BlockingStream> {
        let block = |s: TcpStream| -> io::Result<std::net::TcpStream> {
            let s = s.into_std()?;
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(s)
        };
        Ok(match self {
            Stream::Plain(s) => BlockingStream::Plain(block(s)?),
            Stream::Server(s) => {
                let (tcp, conn) = s.into_inner();
                BlockingStream::Server(Box::new(rustls::StreamOwned::new(conn, block(tcp)?)))
            }
            Stream::Client(s) => {
                let (tcp, conn) = s.into_inner();
                BlockingStream::Client(Box::new(rustls::StreamOwned::new(conn, block(tcp)?)))
            }
        })
    }
}

/// TLS handshake as the server, bounded by `timeout`.
pub(crate) async fn accept_tls(
    tcp: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Result<Stream, Error> {
    let s = tokio::time::timeout(timeout, tokio_rustls::TlsAcceptor::from(cfg).accept(tcp))
        .await
        .map_err(|_| Error::Timeout("in the TLS handshake"))??;
    Ok(Stream::Server(Box::new(s)))
}

/// Opens a connection to `addr` (`host:port`): TLS with `tls` when given (the host is the
/// name the certificate must be valid for), plain TCP otherwise. `connect_timeout` bounds
/// the TCP connect, `timeout` the TLS handshake.
pub(crate) async fn dial(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<Stream, Error> {
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout("connecting"))??;
    tcp.set_nodelay(true)?;
    let Some(cfg) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|_| Error::Url {
        url: addr.to_string(),
        why: "not a valid host name for TLS",
    })?;
    let s = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| Error::Timeout("in the TLS handshake"))??;
    Ok(Stream::Client(Box::new(s)))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A [`Stream`] in blocking mode (snapshot transfers).
pub(crate) enum BlockingStream {
    Plain(std::net::TcpStream),
    Server(Box<rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>>),
    Client(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl BlockingStream {
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            BlockingStream::Plain(s) => s.set_read_timeout(t),
            BlockingStream::Server(s) => s.sock.set_read_timeout(t),
            BlockingStream::Client(s) => s.sock.set_read_timeout(t),
        }
    }
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.read(buf),
            BlockingStream::Server(s) => s.read(buf),
            BlockingStream::Client(s) => s.read(buf),
        }
    }
}

impl Write for BlockingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlockingStream::Plain(s) => s.write(buf),
            BlockingStream::Server(s) => s.write(buf),
            BlockingStream::Client(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlockingStream::Plain(s) => s.flush(),
            BlockingStream::Server(s) => s.flush(),
            BlockingStream::Client(s) => s.flush(),
        }
    }
}
