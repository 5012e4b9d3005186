//! Connections and clients: `--conns` HTTP/2 connections spread over the
//! endpoints, `--clients` gRPC clients spread over the connections (client *i*
//! uses connection *i mod conns*, as etcd's benchmark does), and the auth token.

use std::fmt;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

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
}

/// Largest message a client accepts (a LIST of many keys can be large).
const MAX_DECODE: usize = 512 * 1024 * 1024;

fn endpoint_uri(ep: &str) -> Result<String, BenchError> {
    let ep = ep.trim();
    if ep.starts_with("https://") {
        return Err(flag_err(
            "endpoints",
            format!("{ep}: TLS is not supported by cairn-bench yet; use an http:// endpoint"),
        ));
    }
    if ep.starts_with("http://") {
        return Ok(ep.to_string());
    }
    if ep.contains("://") {
        return Err(flag_err("endpoints", format!("{ep}: unsupported scheme")));
    }
    Ok(format!("http://{ep}"))
}

fn channel(ep: &str, dial_timeout: Duration) -> Result<Channel, BenchError> {
    let uri = endpoint_uri(ep)?;
    let mut e = Endpoint::from_shared(uri.clone())
        .map_err(|err| flag_err("endpoints", format!("{uri}: {err}")))?
        .tcp_nodelay(true)
        .http2_adaptive_window(true);
    if !dial_timeout.is_zero() {
        e = e.connect_timeout(dial_timeout);
    }
    // Lazy: an unreachable endpoint makes each request fail with Unavailable,
    // which the run counts and reports, instead of aborting before it starts.
    Ok(e.connect_lazy())
}

impl Pool {
    /// Opens `--conns` connections (lazily) to `--endpoints` and authenticates
    /// with `--user` if given.
    pub(crate) async fn connect(g: &GlobalOpts) -> Result<Pool, BenchError> {
        if g.cert.is_some() || g.key.is_some() || g.cacert.is_some() {
            let flag = if g.cacert.is_some() {
                "cacert"
            } else if g.cert.is_some() {
                "cert"
            } else {
                "key"
            };
            return Err(flag_err(
                flag,
                "TLS is not supported by cairn-bench yet; benchmark a plain http endpoint",
            ));
        }
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
            vec![find_leader(&g.endpoints, g.dial_timeout).await?]
        } else {
            g.endpoints.clone()
        };
        let channels = (0..g.conns)
            .map(|i| channel(&endpoints[i % endpoints.len()], g.dial_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pool = Pool {
            channels,
            auth: AuthToken::default(),
        };
        if let Some(user) = &g.user {
            pool.auth = authenticate(&pool.channels[0], user).await?;
        }
        Ok(pool)
    }

    fn svc(&self, i: usize) -> Svc {
        InterceptedService::new(
            self.channels[i % self.channels.len()].clone(),
            self.auth.clone(),
        )
    }

    pub(crate) fn kv(&self, i: usize) -> Kv {
        KvClient::new(self.svc(i)).max_decoding_message_size(MAX_DECODE)
    }

    pub(crate) fn watch(&self, i: usize) -> Watch {
        WatchClient::new(self.svc(i)).max_decoding_message_size(MAX_DECODE)
    }

    pub(crate) fn lease(&self, i: usize) -> Lease {
        LeaseClient::new(self.svc(i))
    }
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
pub(crate) async fn status(ep: &str, wait: Duration) -> Result<MemberStatus, String> {
    let ch = channel(ep, wait).map_err(|e| e.to_string())?;
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
async fn find_leader(endpoints: &[String], dial_timeout: Duration) -> Result<String, BenchError> {
    let mut problems = Vec::new();
    let wait = if dial_timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        dial_timeout.max(Duration::from_secs(5))
    };
    for ep in endpoints {
        match status(ep, wait).await {
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
pub(crate) async fn wait_ready(ep: &str, wait: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        let ch = channel(ep, Duration::from_secs(1)).map_err(|e| e.to_string())?;
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
    fn endpoints_get_a_scheme_and_tls_is_refused_by_name() {
        assert_eq!(
            endpoint_uri("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_uri("http://h:1").unwrap(), "http://h:1");
        let e = endpoint_uri("https://h:1").unwrap_err().to_string();
        assert!(e.starts_with("--endpoints: https://h:1: TLS"), "{e}");
        assert!(endpoint_uri("unix:///tmp/x").is_err());
    }
}
