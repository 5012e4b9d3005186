//! TLS on the client port (issue 13, client side): etcdctl 3.5.1 and 3.4.23 over https with
//! client certificates, refused connections (no certificate, an untrusted one, a revoked
//! one), `--auto-tls`, http and https listeners side by side, the handshake deadline, the
//! start-up errors, kubeadm's flag set (with https peers), and a transcript compared with etcd 3.5.1's.
//! Every certificate is made by the test (rcgen).

mod tls_support;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_testkit::{
    cairn_bin, clean_command, etcd_bin, free_port, http_get, run, Ctl, Impl, Proc,
};
use tls_support::{ctl, https_get, wait_healthy, Pki};

/// A member process on an https client port (plus `extra` flags), killed on drop.
struct Tls {
    proc: Proc,
    endpoint: String,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Tls {
    fn start(which: Impl, dir: tempfile::TempDir, client_urls: &str, extra: &[String]) -> Tls {
        let peer = free_port();
        let mut proc = Proc::new(etcd_bin(which), dir.path().join("member.log"));
        let mut args = vec![
            "--name=m1".to_string(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={client_urls}"),
            format!("--advertise-client-urls={client_urls}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=m1=http://127.0.0.1:{peer}"),
        ];
        args.extend(extra.iter().cloned());
        proc.spawn(&args).expect("spawn");
        let endpoint = client_urls.split(',').next().unwrap().to_string();
        let addr = endpoint.split("://").nth(1).unwrap().to_string();
        Tls {
            proc,
            endpoint,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.proc.log()
    }
}

fn https_url() -> String {
    format!("https://127.0.0.1:{}", free_port())
}

/// The commands of the transcript, run with `tls` against `endpoint`: put, get, a watch
/// from revision 1 (stopped after a few seconds), a snapshot, and the refused clients.
fn transcript(endpoint: &str, pki: &Pki, snap_dir: &Path) -> String {
    let good = pki.ctl_flags();
    let mut t = String::new();
    for which in [Ctl::V351, Ctl::V3423] {
        let label = which.label();
        let key = format!("k-{}", &label[8..]);
        let o = ctl(which, endpoint, &good, &["put", &key, "v1"]);
        t += &format!("{label} put: {} {}", o.code.unwrap_or(-1), o.stdout);
        let o = ctl(which, endpoint, &good, &["get", &key]);
        t += &format!("{label} get: {} {}", o.code.unwrap_or(-1), o.stdout);
        // `watch --rev 1` replays the history and then waits: stopped after 4 s.
        let mut c = clean_command(&cairn_testkit::etcdctl_bin(which));
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(&good)
            .args(["watch", "--rev", "1", &key]);
        let o = run(c, b"", Duration::from_secs(4));
        t += &format!("{label} watch --rev 1: {}", o.stdout);
        let snap = snap_dir.join(format!("{label}.db"));
        let o = ctl(
            which,
            endpoint,
            &good,
            &["snapshot", "save", snap.to_str().unwrap()],
        );
        let size = std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0);
        t += &format!(
            "{label} snapshot save: {} saved={} nonempty={}\n",
            o.code.unwrap_or(-1),
            o.stdout.contains("Snapshot saved at"),
            size > 0
        );
        // Refused: no client certificate, one from an untrusted CA, a revoked one.
        let no_cert = vec![format!("--cacert={}", pki.ca.display())];
        let refused = |flags: &[String]| {
            let o = ctl(which, endpoint, flags, &["get", &key, "--dial-timeout=3s"]);
            !o.success() && !o.stdout.contains("v1")
        };
        t += &format!(
            "{label} refused: no-cert={} untrusted={} revoked={}\n",
            refused(&no_cert),
            refused(&pki.ctl_flags_with(&pki.other_cert, &pki.other_key)),
            refused(&pki.ctl_flags_with(&pki.revoked_cert, &pki.revoked_key)),
        );
    }
    t
}

#[test]
fn etcdctl_over_tls_matches_etcd_351() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    let mut out = Vec::new();
    for which in [Impl::Cairn, Impl::Etcd351] {
        let url = https_url();
        let m = Tls::start(
            which,
            tempfile::tempdir().unwrap(),
            &url,
            &pki.server_flags(true),
        );
        wait_healthy(&m.endpoint, &pki.ctl_flags(), &|| m.log());
        let snaps = base.path().join(which.label());
        std::fs::create_dir_all(&snaps).unwrap();
        let t = transcript(&m.endpoint, &pki, &snaps);
        out.push((which, t, m.log()));
    }
    let (cairn, etcd) = (&out[0], &out[1]);
    eprintln!("--- cairn\n{}--- etcd 3.5.1\n{}", cairn.1, etcd.1);
    // The outcomes Cairn must show by itself, whatever etcd does.
    for l in ["etcdctl-3.5.1", "etcdctl-3.4.23"] {
        assert!(cairn.1.contains(&format!("{l} put: 0 OK")), "{}", cairn.1);
        assert!(
            cairn
                .1
                .contains(&format!("{l} snapshot save: 0 saved=true nonempty=true")),
            "{}\n{}",
            cairn.1,
            cairn.2
        );
        assert!(
            cairn.1.contains(&format!(
                "{l} refused: no-cert=true untrusted=true revoked=true"
            )),
            "{}",
            cairn.1
        );
    }
    assert!(
        cairn.1.contains("watch --rev 1: PUT\nk-3.5.1\nv1\n"),
        "{}",
        cairn.1
    );
    assert_eq!(
        cairn.1, etcd.1,
        "cairn's transcript differs from etcd 3.5.1's"
    );
}

#[test]
fn auto_tls_with_insecure_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = https_url();
    let m = Tls::start(Impl::Cairn, dir, &url, &["--auto-tls".to_string()]);
    let skip = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    wait_healthy(&m.endpoint, &skip, &|| m.log());
    for which in [Ctl::V351, Ctl::V3423] {
        let o = ctl(which, &m.endpoint, &skip, &["put", "a", "b"]);
        assert!(o.success(), "{which:?}: {o:?}");
        let o = ctl(
            which,
            &m.endpoint,
            &skip,
            &["get", "a", "--print-value-only"],
        );
        assert_eq!(o.stdout, "b\n", "{which:?}: {o:?}");
    }
    // Verification on (no CA): refused, the certificate is self-signed.
    let o = ctl(
        Ctl::V351,
        &m.endpoint,
        &[],
        &["get", "a", "--dial-timeout=3s"],
    );
    assert!(!o.success(), "{o:?}");
    let cert = data.join("fixtures/client/cert.pem");
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
}

#[test]
fn http_and_https_listeners_side_by_side() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    let (plain, secure) = (free_port(), free_port());
    let urls = format!("https://127.0.0.1:{secure},http://127.0.0.1:{plain}");
    let m = Tls::start(
        Impl::Cairn,
        tempfile::tempdir().unwrap(),
        &urls,
        &pki.server_flags(false),
    );
    wait_healthy(&m.endpoint, &pki.ctl_flags(), &|| m.log());
    let o = ctl(Ctl::V351, &m.endpoint, &pki.ctl_flags(), &["put", "x", "1"]);
    assert!(o.success(), "{o:?}");
    let o = ctl(
        Ctl::V3423,
        &format!("http://127.0.0.1:{plain}"),
        &[],
        &["get", "x", "--print-value-only"],
    );
    assert_eq!(o.stdout, "1\n", "{o:?}");
    // HTTP endpoints on both: plain on one, TLS with a client certificate on the other.
    let (code, body) = http_get(&format!("127.0.0.1:{plain}"), "/health").unwrap();
    assert_eq!(code, 200, "{body}");
    let cfg = tls_support::client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let (status, body) = https_get(&m.addr, cfg, "/health").unwrap();
    assert!(status.contains("200"), "{status} {body}");
    assert!(body.contains("\"health\":\"true\""), "{body}");
    // Plain HTTP on the TLS port gets no answer; TLS without a client certificate fails.
    assert!(!matches!(http_get(&m.addr, "/health"), Ok((200, _))));
    let cfg = tls_support::client_config(&pki.ca, None);
    assert!(https_get(&m.addr, cfg, "/health").is_err());
    // MemberList advertises the https URL as given.
    let o = ctl(
        Ctl::V351,
        &m.endpoint,
        &pki.ctl_flags(),
        &["member", "list"],
    );
    assert!(
        o.stdout.contains(&format!("https://127.0.0.1:{secure}")),
        "{o:?}"
    );
}

#[test]
fn idle_tcp_does_not_block_handshakes_and_is_dropped() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    let m = Tls::start(
        Impl::Cairn,
        tempfile::tempdir().unwrap(),
        &https_url(),
        &pki.server_flags(false),
    );
    wait_healthy(&m.endpoint, &pki.ctl_flags(), &|| m.log());
    // Several connections that never start the handshake.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&m.addr).unwrap())
        .collect();
    let o = ctl(
        Ctl::V351,
        &m.endpoint,
        &pki.ctl_flags(),
        &["put", "while-idle", "ok"],
    );
    assert!(
        o.success(),
        "a handshake waited for idle connections: {o:?}"
    );
    let cfg = tls_support::client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert!(https_get(&m.addr, cfg, "/health").is_ok());
    // The server closes them after its handshake deadline (10 s): EOF or reset, not our
    // own read timeout.
    let started = Instant::now();
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("{n} bytes from a connection that sent nothing"),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "not closed by the server after {:?}: {e}",
                started.elapsed()
            ),
        }
    }
}

/// Runs `cairn` with `args` expecting a start-up failure; returns stderr.
fn start_fails(args: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut c = clean_command(&cairn_bin());
    let url = https_url();
    c.arg(format!("--data-dir={}", dir.path().join("d").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!(
            "--listen-peer-urls=http://127.0.0.1:{}",
            free_port()
        ))
        .args(args);
    let o = run(c, b"", Duration::from_secs(30));
    assert!(
        o.code.is_some() && !o.success(),
        "{args:?} did not fail: {o:?}"
    );
    o.stderr
}

#[test]
fn bad_tls_input_fails_start_up_naming_the_flag() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "TLS key/cert (--cert-file, --key-file) must be provided for client url https://"),
        (
            vec!["--cert-file=/nonexistent/c.pem".into(), format!("--key-file={}", s(&pki.server_key))],
            "--cert-file: open /nonexistent/c.pem: no such file or directory",
        ),
        (
            vec![format!("--cert-file={}", s(&pki.server_cert)), "--key-file=/nonexistent/k.pem".into()],
            "--key-file: open /nonexistent/k.pem: no such file or directory",
        ),
        (
            vec![format!("--cert-file={}", s(&pki.server_cert)), format!("--key-file={}", s(&pki.client_key))],
            "tls: private key does not match public key",
        ),
        (
            vec![format!("--cert-file={}", s(&pki.server_cert))],
            "KeyFile and CertFile must both be present",
        ),
        (
            vec!["--auto-tls".into(), "--cipher-suites=TLS_NOPE".into()],
            "--cipher-suites: unexpected TLS cipher suite \"TLS_NOPE\"",
        ),
        (
            vec!["--auto-tls".into(), "--cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA".into()],
            "--cipher-suites: TLS cipher suite \"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported by cairn",
        ),
        (
            vec!["--auto-tls".into(), "--tls-min-version=TLS1.3".into(), "--tls-max-version=TLS1.2".into()],
            "min version (TLS1.3) is greater than max version (TLS1.2)",
        ),
        (
            vec!["--auto-tls".into(), "--tls-min-version=TLS1.1".into()],
            "--tls-min-version: unexpected TLS version \"TLS1.1\"",
        ),
        (
            vec![
                format!("--cert-file={}", s(&pki.server_cert)),
                format!("--key-file={}", s(&pki.server_key)),
                "--trusted-ca-file=/nonexistent/ca.pem".into(),
            ],
            "--trusted-ca-file: open /nonexistent/ca.pem: no such file or directory",
        ),
        (
            vec![
                format!("--cert-file={}", s(&pki.server_cert)),
                format!("--key-file={}", s(&pki.server_key)),
                format!("--trusted-ca-file={}", s(&pki.ca)),
                "--client-crl-file=/nonexistent/crl.pem".into(),
            ],
            "--client-crl-file: open /nonexistent/crl.pem: no such file or directory",
        ),
    ];
    for (args, want) in cases {
        let err = start_fails(&args);
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
    }
}

/// kubeadm's stacked-etcd flag set, peer TLS included: a CA, a server pair, a peer pair
/// with the member's IP SANs (both usages), https peer URLs. Cairn starts unchanged and
/// serves etcdctl over TLS.
#[test]
fn kubeadm_flag_set_starts() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    // kubeadm's peer.crt: signed by the etcd CA, serverAuth + clientAuth, IP SANs.
    let (peer_cert, peer_key) = pki.new_server_pair("peer");
    let (port, peer) = (free_port(), free_port());
    let dir = base.path().join("data");
    let args = vec![
        format!("--advertise-client-urls=https://127.0.0.1:{port}"),
        format!("--cert-file={}", pki.server_cert.display()),
        "--client-cert-auth=true".to_string(),
        format!("--data-dir={}", dir.display()),
        "--experimental-initial-corrupt-check=true".to_string(),
        "--experimental-watch-progress-notify-interval=5s".to_string(),
        format!("--initial-advertise-peer-urls=https://127.0.0.1:{peer}"),
        format!("--initial-cluster=node1=https://127.0.0.1:{peer}"),
        format!("--key-file={}", pki.server_key.display()),
        format!("--listen-client-urls=https://127.0.0.1:{port}"),
        format!("--listen-peer-urls=https://127.0.0.1:{peer}"),
        "--name=node1".to_string(),
        format!("--peer-cert-file={}", peer_cert.display()),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-key-file={}", peer_key.display()),
        format!("--peer-trusted-ca-file={}", pki.ca.display()),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={}", pki.ca.display()),
    ];
    let mut p = Proc::new(cairn_bin(), base.path().join("log"));
    p.spawn(&args).unwrap();
    let ep = format!("https://127.0.0.1:{port}");
    wait_healthy(&ep, &pki.ctl_flags(), &|| p.log());
    let o = ctl(
        Ctl::V351,
        &ep,
        &pki.ctl_flags(),
        &["put", "/registry/x", "y"],
    );
    assert!(o.success(), "{o:?}");
    let o = ctl(
        Ctl::V351,
        &ep,
        &pki.ctl_flags(),
        &["member", "list", "-w", "simple"],
    );
    assert!(o.success(), "{o:?}");
    assert!(
        o.stdout.contains(&format!("https://127.0.0.1:{peer}")),
        "{}",
        o.stdout
    );
    // The peer port speaks TLS with the peer pair, and wants a client certificate.
    let addr = format!("127.0.0.1:{peer}");
    let cfg = tls_support::client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(
        tls_support::served_cert(&addr, cfg),
        tls_support::pem_cert(&peer_cert)
    );
}

/// A new key pair written over the files is served to the next connections, without a
/// restart.
#[test]
fn certificate_reloaded_from_disk() {
    let base = tempfile::tempdir().unwrap();
    let pki = Pki::new(&base.path().join("pki"));
    let m = Tls::start(
        Impl::Cairn,
        tempfile::tempdir().unwrap(),
        &https_url(),
        &pki.server_flags(false),
    );
    wait_healthy(&m.endpoint, &pki.ctl_flags(), &|| m.log());
    let cfg = tls_support::client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(
        tls_support::served_cert(&m.addr, cfg.clone()),
        tls_support::pem_cert(&pki.server_cert)
    );
    // Another pair from the same CA, written over the served files.
    let fresh = pki.new_server_pair("server-2");
    std::fs::copy(&fresh.1, &pki.server_key).unwrap();
    std::fs::copy(&fresh.0, &pki.server_cert).unwrap();
    let want = tls_support::pem_cert(&pki.server_cert);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tls_support::served_cert(&m.addr, cfg.clone()) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate never served:\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = ctl(
        Ctl::V351,
        &m.endpoint,
        &pki.ctl_flags(),
        &["put", "after", "reload"],
    );
    assert!(o.success(), "{o:?}");
}

/// etcdctl 3.4.23's `endpoint status`, `endpoint hashkv` and `defrag` with `https://`
/// endpoints. (With plain http these connections carry the endpoint URL as `:authority`,
/// see `go34_authority.rs`; over TLS, Go's client sends a bare authority — checked by
/// running this test with the TLS listener unwrapped — so this covers the https half of
/// the same acceptance point.)
#[test]
fn etcdctl_34_endpoint_commands_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let m = Tls::start(Impl::Cairn, tmp, &https_url(), &pki.server_flags(false));
    let tls = pki.ctl_flags();
    wait_healthy(&m.endpoint, &tls, &|| m.log());
    let ok = |args: &[&str]| {
        let o = ctl(Ctl::V3423, &m.endpoint, &tls, args);
        assert!(
            o.success(),
            "etcdctl 3.4.23 {args:?} against {} failed:\n{}{}\nlog:\n{}",
            m.endpoint,
            o.stdout,
            o.stderr,
            m.log()
        );
        o.stdout
    };
    ok(&["put", "k", "v"]);
    let status = ok(&["endpoint", "status"]);
    let fields: Vec<&str> = status.trim().split(", ").collect();
    assert!(fields.len() >= 9, "endpoint status: {status:?}");
    assert_eq!(fields[0], m.endpoint, "{status:?}");
    assert!(fields[2].starts_with("3."), "version in {status:?}");
    assert_eq!(fields[4], "true", "the only member leads: {status:?}");
    let hashkv = ok(&["endpoint", "hashkv"]);
    let (ep, hash) = hashkv
        .trim()
        .split_once(", ")
        .expect("endpoint hashkv line");
    assert_eq!(ep, m.endpoint);
    assert_ne!(hash.parse::<u32>().expect("a hash"), 0, "{hashkv:?}");
    assert_eq!(
        ok(&["defrag"]).trim(),
        format!("Finished defragmenting etcd member[{}]", m.endpoint)
    );
    assert_eq!(ok(&["get", "k", "--print-value-only"]).trim(), "v");
}
