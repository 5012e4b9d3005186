//! Connections and clients: `--conns` HTTP/2 connections spread over the
//! endpoints, `--clients` gRPC clients spread over the connections (client *i*
//! uses connection *i mod conns*, as etcd's benchmark does), and the auth token.

use std::fmt;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::GlobalOpts;
use crate::proto::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient, AuthenticateRequest,
    StatusRequest,
};

/// Errors that stop a benchmark before or outside its request loop. Errors of
/// individual requests are not these: they are counted in the summary.
#[derive(Debug)]
pub enum BenchError {
    /// A flag's value cannot be used; names the flag.
    Flag {
        flag: &'static str,
        msg: String,
    },
    /// Setting up the run failed (authentication, leader lookup, seeding keys...).
    Setup(String),
    /// Starting or driving a server process in `compare` failed.
    Server(String),
    Io(std::io::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Flag { flag, msg } => write!(f, "--{flag}: {msg}"),
            BenchError::Setup(m) => write!(f, "{m}"),
            BenchError::Server(m) => write!(f, "server: {m}"),
            BenchError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError::Io(e)
    }
}

pub(crate) fn flag_err(flag: &'static str, msg: impl Into<String>) -> BenchError {
    BenchError::Flag {
        flag,
        msg: msg.into(),
    }
}

/// Adds etcd's `token` metadata to every request once authenticated.
#[derive(Clone, Default)]
pub(crate) struct AuthToken(Option<MetadataValue<Ascii>>);

impl Interceptor for AuthToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

pub(crate) type Svc = InterceptedService<Channel, AuthToken>;
pub(crate) type Kv = KvClient<Svc>;
pub(crate) type Watch = WatchClient<Svc>;
pub(crate) type Lease = LeaseClient<Svc>;

/// The connections of one run.
#[derive(Clone)]
pub(crate) struct Pool {
    channels: Vec<Channel>,
    auth: AuthToken,
    dialer: Dialer,
}

/// Largest message a client accepts (a LIST of many keys can be large).
const MAX_DECODE: usize = 512 * 1024 * 1024;

/// How connections are made: TLS settings (from `--cacert`, `--cert`, `--key`) and
/// the dial timeout. Endpoints without a scheme use TLS when any TLS flag is given
/// (as etcd's clientv3 does); `https://` always does, `http://` never.
#[derive(Clone, Default)]
pub(crate) struct Dialer {
    tls: Option<ClientTlsConfig>,
    dial_timeout: Duration,
}

fn read_flag_file(flag: &'static str, path: &str) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|e| flag_err(flag, format!("{path}: {e}")))
}

impl Dialer {
    /// From the global flags: reads the certificate files now, so a missing or
    /// unreadable one is reported before anything runs.
    pub(crate) fn new(g: &GlobalOpts) -> Result<Dialer, BenchError> {
        Self::from_files(
            g.cacert.as_deref(),
            g.cert.as_deref(),
            g.key.as_deref(),
            g.dial_timeout,
        )
    }

    pub(crate) fn from_files(
        cacert: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
        dial_timeout: Duration,
    ) -> Result<Dialer, BenchError> {
        let tls = match (cacert, cert, key) {
            (None, None, None) => None,
            (_, Some(_), None) => return Err(flag_err("key", "--cert needs --key")),
            (_, None, Some(_)) => return Err(flag_err("cert", "--key needs --cert")),
            (ca, cert, key) => {
                let mut t = ClientTlsConfig::new();
                t = match ca {
                    Some(ca) => {
                        t.ca_certificate(Certificate::from_pem(read_flag_file("cacert", ca)?))
                    }
                    None => t.with_native_roots(),
                };
                if let (Some(cert), Some(key)) = (cert, key) {
                    t = t.identity(Identity::from_pem(
                        read_flag_file("cert", cert)?,
                        read_flag_file("key", key)?,
                    ));
                }
                Some(t)
            }
        };
        Ok(Dialer { tls, dial_timeout })
    }

    /// The same settings with another dial timeout (0: none).
    pub(crate) fn with_timeout(&self, dial_timeout: Duration) -> Dialer {
        Dialer {
            tls: self.tls.clone(),
            dial_timeout,
        }
    }

    /// Whether endpoints without a scheme are dialled with TLS.
    pub(crate) fn tls(&self) -> bool {
        self.tls.is_some()
    }

    fn uri(&self, ep: &str) -> Result<String, BenchError> {
        endpoint_uri(ep, self.tls())
    }

    /// An endpoint for `ep`, with TLS set up when its scheme asks for it. Each call
    /// builds its own TLS client configuration, so connections made from different
    /// endpoints share no TLS session cache (no resumption between them).
    pub(crate) fn endpoint(&self, ep: &str) -> Result<Endpoint, BenchError> {
        let uri = self.uri(ep)?;
        let mut e = Endpoint::from_shared(uri.clone())
            .map_err(|err| flag_err("endpoints", format!("{uri}: {err}")))?
            .tcp_nodelay(true)
            .http2_adaptive_window(true);
        if !self.dial_timeout.is_zero() {
            e = e.connect_timeout(self.dial_timeout);
        }
        if uri.starts_with("https://") {
            // https:// without any TLS flag: the system's roots, as Go's clients use.
            let t = self
                .tls
                .clone()
                .unwrap_or_else(|| ClientTlsConfig::new().with_native_roots());
            e = e
                .tls_config(t)
                .map_err(|err| flag_err("cacert", format!("{uri}: TLS setup: {err}")))?;
        }
        Ok(e)
    }

    /// A lazily connected channel to `ep`: an unreachable endpoint makes each request
    /// fail with Unavailable, which the run counts and reports, instead of aborting
    /// before it starts.
    pub(crate) fn channel(&self, ep: &str) -> Result<Channel, BenchError> {
        Ok(self.endpoint(ep)?.connect_lazy())
    }
}

fn endpoint_uri(ep: &str, tls: bool) -> Result<String, BenchError> {
    let ep = ep.trim();
    if ep.starts_with("https://") || ep.starts_with("http://") {
        return Ok(ep.to_string());
    }
    if ep.contains("://") {
        return Err(flag_err("endpoints", format!("{ep}: unsupported scheme")));
    }
    Ok(format!("{}://{ep}", if tls { "https" } else { "http" }))
}

impl Pool {
    /// Opens `--conns` connections (lazily) to `--endpoints`, with TLS when the
    /// flags or the endpoints' scheme ask for it, and authenticates with `--user`
    /// if given.
    pub(crate) async fn connect(g: &GlobalOpts) -> Result<Pool, BenchError> {
        Self::connect_with(g, Dialer::new(g)?).await
    }

    /// Like [`Pool::connect`] with the TLS settings of `dialer` (its dial timeout
    /// is `--dial-timeout`'s).
    pub(crate) async fn connect_with(g: &GlobalOpts, dialer: Dialer) -> Result<Pool, BenchError> {
        let dialer = dialer.with_timeout(g.dial_timeout);
        if g.endpoints.is_empty() {
            return Err(flag_err("endpoints", "at least one endpoint is needed"));
        }
        if g.conns == 0 {
            return Err(flag_err("conns", "must be at least 1"));
        }
        if g.clients == 0 {
            return Err(flag_err("clients", "must be at least 1"));
        }
        let endpoints = if g.target_leader {
            vec![find_leader(&dialer, &g.endpoints).await?]
        } else {
            g.endpoints.clone()
        };
        let channels = (0..g.conns)
            .map(|i| dialer.channel(&endpoints[i % endpoints.len()]))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pool = Pool {
            channels,
            auth: AuthToken::default(),
            dialer,
        };
        if let Some(user) = &g.user {
            pool.auth = authenticate(&pool.channels[0], user).await?;
        }
        Ok(pool)
    }

    /// How this pool's connections were made.
    pub(crate) fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// The auth token interceptor of this pool (for connections made outside it).
    pub(crate) fn auth(&self) -> AuthToken {
        self.auth.clone()
    }

    fn svc(&self, i: usize) -> Svc {
        InterceptedService::new(
            self.channels[i % self.channels.len()].clone(),
            self.auth.clone(),
        )
    }

    pub(crate) fn kv(&self, i: usize) -> Kv {
        kv_client(
            self.channels[i % self.channels.len()].clone(),
            self.auth.clone(),
        )
    }

    pub(crate) fn watch(&self, i: usize) -> Watch {
        WatchClient::new(self.svc(i)).max_decoding_message_size(MAX_DECODE)
    }

    pub(crate) fn lease(&self, i: usize) -> Lease {
        LeaseClient::new(self.svc(i))
    }
}

/// A KV client on `ch` sending `auth`'s token.
pub(crate) fn kv_client(ch: Channel, auth: AuthToken) -> Kv {
    KvClient::new(InterceptedService::new(ch, auth)).max_decoding_message_size(MAX_DECODE)
}

async fn authenticate(ch: &Channel, user: &str) -> Result<AuthToken, BenchError> {
    let Some((name, password)) = user.split_once(':') else {
        return Err(flag_err(
            "user",
            "password prompts are not supported; pass --user name:password",
        ));
    };
    let resp = AuthClient::new(ch.clone())
        .authenticate(AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
        })
        .await
        .map_err(|s| {
            flag_err(
                "user",
                format!("authentication failed: {:?}: {}", s.code(), s.message()),
            )
        })?;
    let token = resp.into_inner().token;
    let v = MetadataValue::try_from(token.as_str())
        .map_err(|_| BenchError::Setup("server returned a token that is not ASCII".into()))?;
    Ok(AuthToken(Some(v)))
}

/// What one member's Maintenance.Status says about itself and its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberStatus {
    /// The answering member's id (from the response header).
    pub(crate) id: u64,
    /// The leader it knows of; 0 for none.
    pub(crate) leader: u64,
    pub(crate) raft_index: u64,
    pub(crate) applied_index: u64,
}

impl MemberStatus {
    pub(crate) fn is_leader(&self) -> bool {
        self.id != 0 && self.id == self.leader
    }
}

/// Maintenance.Status of `ep`, given at most `wait` to answer.
pub(crate) async fn status(
    dialer: &Dialer,
    ep: &str,
    wait: Duration,
) -> Result<MemberStatus, String> {
    let ch = dialer
        .with_timeout(wait)
        .channel(ep)
        .map_err(|e| e.to_string())?;
    let mut m = MaintenanceClient::new(ch);
    match tokio::time::timeout(wait, m.status(StatusRequest {})).await {
        Ok(Ok(r)) => {
            let r = r.into_inner();
            Ok(MemberStatus {
                id: r.header.map(|h| h.member_id).unwrap_or(0),
                leader: r.leader,
                raft_index: r.raft_index,
                applied_index: r.raft_applied_index,
            })
        }
        Ok(Err(s)) => Err(format!("{ep}: {:?}: {}", s.code(), s.message())),
        Err(_) => Err(format!("{ep}: status timed out")),
    }
}

/// The endpoint whose Status says it is the leader (`--target-leader`).
async fn find_leader(dialer: &Dialer, endpoints: &[String]) -> Result<String, BenchError> {
    let mut problems = Vec::new();
    let wait = if dialer.dial_timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        dialer.dial_timeout.max(Duration::from_secs(5))
    };
    for ep in endpoints {
        match status(dialer, ep, wait).await {
            Ok(st) if st.is_leader() => return Ok(ep.clone()),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    Err(flag_err(
        "target-leader",
        format!(
            "no endpoint reports itself as leader ({})",
            problems.join("; ")
        ),
    ))
}

/// Waits until `ep` answers Maintenance.Status, for at most `wait`.
pub(crate) async fn wait_ready(dialer: &Dialer, ep: &str, wait: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = String::from("no answer");
    let dialer = dialer.with_timeout(Duration::from_secs(1));
    while tokio::time::Instant::now() < deadline {
        let ch = dialer.channel(ep).map_err(|e| e.to_string())?;
        let mut m = MaintenanceClient::new(ch);
        match tokio::time::timeout(Duration::from_secs(2), m.status(StatusRequest {})).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(s)) => last = format!("{:?}: {}", s.code(), s.message()),
            Err(_) => last = "status timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_from_the_tls_flags() {
        assert_eq!(
            endpoint_uri("127.0.0.1:2379", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_uri("127.0.0.1:2379", true).unwrap(),
            "https://127.0.0.1:2379"
        );
        assert_eq!(endpoint_uri("http://h:1", true).unwrap(), "http://h:1");
        assert_eq!(endpoint_uri("https://h:1", false).unwrap(), "https://h:1");
        assert!(endpoint_uri("unix:///tmp/x", false).is_err());
    }

    #[test]
    fn tls_flags_are_checked_before_anything_runs() {
        let z = Duration::ZERO;
        assert!(!Dialer::from_files(None, None, None, z).unwrap().tls());
        let e = Dialer::from_files(None, Some("c.pem"), None, z)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "--key: --cert needs --key");
        let e = Dialer::from_files(Some("/nonexistent/ca.pem"), None, None, z)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("--cacert: /nonexistent/ca.pem: "), "{e}");
    }
}
