//! HTTP endpoints on the client port, with etcd's paths, status codes and bodies
//! (`server/etcdserver/api/etcdhttp/{health,version}.go`):
//!
//! - `GET /health[?exclude=ALARM&serializable=true]`: `{"health":"true","reason":""}` with 200,
//!   or `{"health":"false","reason":"..."}` with 503. Checks in order: active alarms not
//!   excluded (`ALARM NOSPACE`, `ALARM CORRUPT`), a known leader unless serializable
//!   (`RAFT NO LEADER`), then a Range probe (`RANGE ERROR:<error>`).
//! - `GET /livez`, `/readyz` (etcd 3.5.11+): plain-text checks, `[+]name ok` /
//!   `[-]name failed: reason` lines; success answers `ok` (the lines first with `?verbose`),
//!   failure answers 503 with every line. `?exclude=name` skips a check; every check also has
//!   its own path (`/readyz/linearizable_read`). livez: `serializable_read`. readyz:
//!   `data_corruption`, `serializable_read`, `linearizable_read`, `non_learner`.
//! - `GET /version`: `{"etcdserver":"3.5.x","etcdcluster":"3.5.0"}`.
//!
//! - `/v2/...`: 404 saying the v2 API is not supported (`--enable-v2` is only accepted).
//!
//! Any other method answers 405 with `Allow: GET`. Unknown paths get the router's 404.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use crate::status::MemberStatus;

/// How long a Range probe may take before the check fails (etcd: its request timeout,
/// 5 s + 2 × election timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(7);

/// The router the server mounts on the client port next to gRPC.
pub fn router(status: Arc<dyn MemberStatus>) -> Router {
    let mut r = Router::new()
        .route("/health", any(health))
        .route("/version", any(version))
        .route("/livez", any(|s, req| checks_root(s, req, LIVEZ)))
        .route("/readyz", any(|s, req| checks_root(s, req, READYZ)))
        .route("/v2", any(v2_not_supported))
        .route("/v2/{*rest}", any(v2_not_supported));
    for group in [LIVEZ, READYZ] {
        for check in group.checks {
            let path = format!("/{}/{}", group.name, check.name());
            r = r.route(&path, any(move |s, req| checks_one(s, req, *check)));
        }
    }
    r.with_state(status)
}

type Status = Arc<dyn MemberStatus>;

fn method_not_allowed() -> Response {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed\n".into(),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    resp
}

/// A plain-text response as Go's `http.Error` and plain writes produce it.
fn text(code: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Query parameters in order (`exclude` may repeat).
fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn probe(status: &Status, serializable: bool) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, status.range_probe(serializable)).await {
        Ok(r) => r,
        Err(_) => Err("etcdserver: request timed out".to_string()),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `/health`'s verdict: `Ok(())` healthy, `Err(reason)` not.
async fn health_verdict(
    status: &Status,
    excluded: &[String],
    serializable: bool,
) -> Result<(), String> {
    for alarm in status.alarms() {
        if excluded.contains(&alarm) {
            continue;
        }
        return Err(match alarm.as_str() {
            "NOSPACE" => "ALARM NOSPACE".to_string(),
            "CORRUPT" => "ALARM CORRUPT".to_string(),
            _ => "ALARM UNKNOWN".to_string(),
        });
    }
    if !serializable && !status.has_leader() {
        return Err("RAFT NO LEADER".to_string());
    }
    probe(status, serializable)
        .await
        .map_err(|e| format!("RANGE ERROR:{e}"))
}

async fn health(State(status): State<Status>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let q = query(&req);
    let excluded: Vec<String> = q
        .iter()
        .filter(|(k, v)| k == "exclude" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    // Go's `Query().Get` takes the first value.
    let serializable = q
        .iter()
        .find(|(k, _)| k == "serializable")
        .is_some_and(|(_, v)| v == "true");
    let (code, health, reason) = match health_verdict(&status, &excluded, serializable).await {
        Ok(()) => (StatusCode::OK, "true", String::new()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, "false", reason),
    };
    // Field order as etcd's struct: health, reason.
    let mut body = format!(
        "{{\"health\":\"{health}\",\"reason\":{}}}",
        json_string(&reason)
    );
    if code != StatusCode::OK {
        body.push('\n'); // http.Error appends a newline
    }
    text(code, body)
}

async fn version(State(status): State<Status>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let body = format!(
        "{{\"etcdserver\":{},\"etcdcluster\":{}}}",
        json_string(&status.server_version()),
        json_string(&status.cluster_version())
    );
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The etcd v2 API is not served (`--enable-v2` is accepted for compatibility): 404, as etcd
/// without v2 answers, with a body that says why.
async fn v2_not_supported() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "etcd v2 API is not supported by cairn (only the v3 API is served)\n".into(),
    )
}

/// One named check of `/livez` or `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    async fn run(self, status: &Status) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if status.alarms().iter().any(|a| a == "CORRUPT") {
                    Err("alarm activated: CORRUPT".to_string())
                } else {
                    Ok(())
                }
            }
            Check::SerializableRead => probe(status, true).await,
            Check::LinearizableRead => probe(status, false).await,
            Check::NonLearner => {
                if status.is_learner() {
                    Err("not supported for learner".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Group {
    name: &'static str,
    checks: &'static [Check],
}

const LIVEZ: Group = Group {
    name: "livez",
    checks: &[Check::SerializableRead],
};
const READYZ: Group = Group {
    name: "readyz",
    checks: &[
        Check::DataCorruption,
        Check::SerializableRead,
        Check::LinearizableRead,
        Check::NonLearner,
    ],
};

async fn run_checks(status: &Status, checks: &[Check], verbose: bool) -> Response {
    let mut lines = String::new();
    let mut failed = false;
    for c in checks {
        match c.run(status).await {
            Ok(()) => lines.push_str(&format!("[+]{} ok\n", c.name())),
            Err(e) => {
                failed = true;
                lines.push_str(&format!("[-]{} failed: {e}\n", c.name()));
            }
        }
    }
    if failed {
        lines.push('\n'); // http.Error appends a newline
        return text(StatusCode::SERVICE_UNAVAILABLE, lines);
    }
    let mut body = if verbose { lines } else { String::new() };
    body.push_str("ok\n");
    text(StatusCode::OK, body)
}

async fn checks_root(State(status): State<Status>, req: Request, group: Group) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let q = query(&req);
    let excluded: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let verbose = q.iter().any(|(k, _)| k == "verbose");
    let checks: Vec<Check> = group
        .checks
        .iter()
        .copied()
        .filter(|c| !excluded.contains(&c.name()))
        .collect();
    run_checks(&status, &checks, verbose).await
}

async fn checks_one(State(status): State<Status>, req: Request, check: Check) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let verbose = query(&req).iter().any(|(k, _)| k == "verbose");
    run_checks(&status, &[check], verbose).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ProbeFuture;
    use axum::body::to_bytes;
    use parking_lot::Mutex;
    use tower::ServiceExt;

    /// A status fake: the handlers' input, set per test.
    #[derive(Default)]
    struct Fake {
        no_leader: bool,
        learner: bool,
        alarms: Vec<String>,
        /// Errors returned by the probe, per serializable flag.
        serializable_err: Option<String>,
        linearizable_err: Option<String>,
        probes: Mutex<Vec<bool>>,
    }

    impl MemberStatus for Fake {
        fn has_leader(&self) -> bool {
            !self.no_leader
        }
        fn alarms(&self) -> Vec<String> {
            self.alarms.clone()
        }
        fn is_learner(&self) -> bool {
            self.learner
        }
        fn range_probe(&self, serializable: bool) -> ProbeFuture<'_> {
            self.probes.lock().push(serializable);
            let r = if serializable {
                &self.serializable_err
            } else {
                &self.linearizable_err
            };
            let r = match r {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
            Box::pin(async move { r })
        }
    }

    async fn call(fake: Fake, method: Method, uri: &str) -> (StatusCode, String, Vec<bool>) {
        let fake = Arc::new(fake);
        let app = router(fake.clone());
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let code = resp.status();
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let probes = fake.probes.lock().clone();
        (code, String::from_utf8(body.to_vec()).unwrap(), probes)
    }

    async fn get(fake: Fake, uri: &str) -> (StatusCode, String) {
        let (c, b, _) = call(fake, Method::GET, uri).await;
        (c, b)
    }

    #[tokio::test]
    async fn health_ok_probes_linearizably() {
        let (code, body, probes) = call(Fake::default(), Method::GET, "/health").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, r#"{"health":"true","reason":""}"#);
        assert_eq!(probes, vec![false]);
        let (_, _, probes) = call(Fake::default(), Method::GET, "/health?serializable=true").await;
        assert_eq!(probes, vec![true]);
    }

    #[tokio::test]
    async fn health_alarms_and_exclusion() {
        let nospace = || Fake {
            alarms: vec!["NOSPACE".into()],
            ..Fake::default()
        };
        assert_eq!(
            get(nospace(), "/health").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".to_string()
            )
        );
        assert_eq!(
            get(nospace(), "/health?exclude=NOSPACE").await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(nospace(), "/health?exclude=CORRUPT").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let corrupt = Fake {
            alarms: vec!["CORRUPT".into(), "NOSPACE".into()],
            ..Fake::default()
        };
        let (_, body) = get(corrupt, "/health?exclude=NOSPACE").await;
        assert!(body.contains("ALARM CORRUPT"), "{body}");
        let other = Fake {
            alarms: vec!["WEIRD".into()],
            ..Fake::default()
        };
        assert!(get(other, "/health").await.1.contains("ALARM UNKNOWN"));
    }

    #[tokio::test]
    async fn health_leader_check_skipped_when_serializable() {
        let nl = || Fake {
            no_leader: true,
            ..Fake::default()
        };
        let (code, body, probes) = call(nl(), Method::GET, "/health").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"
        );
        assert!(probes.is_empty(), "no probe after a failed leader check");
        assert_eq!(
            get(nl(), "/health?serializable=true").await.0,
            StatusCode::OK
        );
        // Only the exact value "true" means serializable.
        assert_eq!(
            get(nl(), "/health?serializable=1").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn health_range_error() {
        let f = Fake {
            linearizable_err: Some("etcdserver: request timed out".into()),
            ..Fake::default()
        };
        assert_eq!(
            get(f, "/health").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"health\":\"false\",\"reason\":\"RANGE ERROR:etcdserver: request timed out\"}\n"
                    .to_string()
            )
        );
    }

    #[tokio::test]
    async fn only_get_is_allowed() {
        for path in [
            "/health",
            "/version",
            "/livez",
            "/readyz",
            "/readyz/non_learner",
        ] {
            let fake = Arc::new(Fake::default());
            let req = Request::builder()
                .method(Method::POST)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let resp = router(fake).oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert_eq!(resp.headers()[header::ALLOW], "GET");
        }
    }

    #[tokio::test]
    async fn version_json() {
        let fake = Arc::new(Fake::default());
        let req = Request::builder()
            .uri("/version")
            .body(Body::empty())
            .unwrap();
        let resp = router(fake).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            format!(
                "{{\"etcdserver\":\"{}\",\"etcdcluster\":\"{}\"}}",
                crate::status::SERVER_VERSION,
                crate::status::CLUSTER_VERSION
            )
        );
    }

    #[tokio::test]
    async fn readyz_and_livez() {
        assert_eq!(
            get(Fake::default(), "/readyz").await,
            (StatusCode::OK, "ok\n".to_string())
        );
        assert_eq!(
            get(Fake::default(), "/readyz?verbose").await.1,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
             [+]non_learner ok\nok\n"
        );
        assert_eq!(
            get(Fake::default(), "/livez?verbose").await.1,
            "[+]serializable_read ok\nok\n"
        );
        let learner = || Fake {
            learner: true,
            ..Fake::default()
        };
        assert_eq!(
            get(learner(), "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
                 [-]non_learner failed: not supported for learner\n\n"
                    .to_string()
            )
        );
        assert_eq!(
            get(learner(), "/readyz?exclude=non_learner").await.0,
            StatusCode::OK
        );
        assert_eq!(get(learner(), "/livez").await.0, StatusCode::OK);
        assert_eq!(
            get(learner(), "/readyz/non_learner").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            get(learner(), "/readyz/serializable_read?verbose").await,
            (StatusCode::OK, "[+]serializable_read ok\nok\n".to_string())
        );
        let corrupt = Fake {
            alarms: vec!["CORRUPT".into()],
            ..Fake::default()
        };
        assert!(get(corrupt, "/readyz")
            .await
            .1
            .contains("[-]data_corruption failed: alarm activated: CORRUPT\n"));
        // NOSPACE does not make a member unready or dead.
        let nospace = || Fake {
            alarms: vec!["NOSPACE".into()],
            ..Fake::default()
        };
        assert_eq!(get(nospace(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(nospace(), "/livez").await.0, StatusCode::OK);
        let no_quorum = Fake {
            linearizable_err: Some("etcdserver: no leader".into()),
            ..Fake::default()
        };
        let (code, body, probes) = call(no_quorum, Method::GET, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("[-]linearizable_read failed: etcdserver: no leader\n"),
            "{body}"
        );
        assert_eq!(probes, vec![true, false]);
        let f = Fake {
            linearizable_err: Some("x".into()),
            ..Fake::default()
        };
        assert_eq!(
            get(f, "/livez").await.0,
            StatusCode::OK,
            "livez reads serializably"
        );
    }

    #[tokio::test]
    async fn v2_api_is_refused_clearly() {
        for path in ["/v2/keys/foo", "/v2", "/v2/members"] {
            let (code, body) = get(Fake::default(), path).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
            assert!(
                body.contains("v2 API is not supported by cairn"),
                "{path}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        assert_eq!(get(Fake::default(), "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get(Fake::default(), "/readyz/nope").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
