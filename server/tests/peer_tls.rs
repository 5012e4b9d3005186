//! TLS on the peer port (issue 13, peer side): three-member clusters with
//! `--peer-auto-tls` and with a peer CA and `--peer-client-cert-auth` elect, replicate, add
//! a learner (which joins over https with `--initial-cluster-state existing`) and survive
//! a leader kill -9; members presenting a certificate from another CA, or a CN outside
//! `--peer-cert-allowed-cn`, are refused and logged; bad peer TLS input fails start-up
//! naming the flag. Every certificate is made by the test (rcgen).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_testkit::{cairn_bin, clean_command, etcdctl, free_port, run, Ctl, Output, Proc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA for peer certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    path: PathBuf,
}

impl Ca {
    fn new(dir: &Path, cn: &str) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        let path = dir.join(format!("{cn}-ca.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        Ca { cert, key, path }
    }

    /// A peer pair like kubeadm's: server and client auth, the member's IP in the SANs.
    /// Returns `(cert, key)` files.
    fn peer_pair(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let c = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cp, kp) = (
            dir.join(format!("{cn}-{}.pem", free_port())),
            dir.join(format!("{cn}-{}-key.pem", free_port())),
        );
        std::fs::write(&cp, c.pem()).unwrap();
        std::fs::write(&kp, key.serialize_pem()).unwrap();
        (cp, kp)
    }
}

/// One member process: plain client port, https peer port.
struct Member {
    name: String,
    proc: Proc,
    client: String,
}

impl Member {
    fn log(&self) -> String {
        self.proc.log()
    }
}

fn spawn(
    base: &Path,
    name: &str,
    peer: &str,
    initial_cluster: &str,
    state: &str,
    extra: &[String],
) -> Member {
    let client = format!("http://127.0.0.1:{}", free_port());
    let mut proc = Proc::new(cairn_bin(), base.join(format!("{name}.log")));
    let mut args = vec![
        format!("--name={name}"),
        format!("--data-dir={}", base.join(name).display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster={initial_cluster}"),
        format!("--initial-cluster-state={state}"),
        "--initial-cluster-token=peer-tls".to_string(),
        "--heartbeat-interval=50".to_string(),
        "--election-timeout=500".to_string(),
    ];
    args.extend(extra.iter().cloned());
    proc.spawn(&args).expect("spawn");
    Member {
        name: name.to_string(),
        proc,
        client,
    }
}

fn ctl(endpoint: &str, args: &[&str]) -> Output {
    etcdctl(Ctl::V351, endpoint, args, b"")
}

/// Retries `f` for up to 30 s; panics with `ctx()` when it never succeeds.
fn eventually<T>(what: &str, ctx: &dyn Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened\n{}",
            ctx()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of `key` read from `endpoint` (`serializable` for a learner), if any.
fn get(endpoint: &str, key: &str, serializable: bool) -> Option<String> {
    let mut args = vec!["get", key, "--print-value-only"];
    if serializable {
        args.push("--consistency=s");
    }
    let o = ctl(endpoint, &args);
    o.success()
        .then(|| o.stdout.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The leader's member id as `endpoint status` reports it, and each endpoint's own id.
fn leader_of(endpoints: &[String]) -> Option<(u64, Vec<(String, u64)>)> {
    let o = ctl(&endpoints.join(","), &["endpoint", "status", "-w", "json"]);
    if !o.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).ok()?;
    let mut ids = Vec::new();
    let mut leader = 0;
    for e in v.as_array()? {
        let ep = e["Endpoint"].as_str()?.to_string();
        let id = e["Status"]["header"]["member_id"].as_u64()?;
        leader = e["Status"]["leader"].as_u64()?;
        ids.push((ep, id));
    }
    (leader != 0).then_some((leader, ids))
}

fn logs(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("--- {}:\n{}", m.name, m.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Three https-peer members with `flags(i)`; then replicate, add a learner, kill -9 the
/// leader and write again.
fn cluster_lifecycle(base: &Path, flags: &dyn Fn(usize) -> Vec<String>) {
    let peers: Vec<String> = (0..3)
        .map(|_| format!("https://127.0.0.1:{}", free_port()))
        .collect();
    let initial: String = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("m{i}={p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            spawn(
                base,
                &format!("m{i}"),
                &peers[i],
                &initial,
                "new",
                &flags(i),
            )
        })
        .collect();
    let ep0 = members[0].client.clone();
    // Elect and replicate: a put through m0 is read from m2 (linearizable: through the
    // leader's read index, over the TLS peer links).
    eventually("put through m0", &|| String::new(), || {
        ctl(&ep0, &["put", "k1", "v1"]).success().then_some(())
    });
    let ep2 = members[2].client.clone();
    let got = eventually("read k1 from m2", &|| String::new(), || {
        get(&ep2, "k1", false)
    });
    assert_eq!(got, "v1");
    // Every peer link is TLS: the handshakes are logged as refused nowhere.
    for m in &members {
        assert!(
            !m.log().contains("TLS handshake failed"),
            "{}",
            logs(&members)
        );
    }

    // A learner joins over https.
    let peer3 = format!("https://127.0.0.1:{}", free_port());
    let url3 = format!("--peer-urls={peer3}");
    eventually("member add --learner", &|| logs(&members), || {
        let add = ctl(&ep0, &["member", "add", "m3", "--learner", &url3]);
        add.success().then_some(())
    });
    let initial4 = format!("{initial},m3={peer3}");
    members.push(spawn(base, "m3", &peer3, &initial4, "existing", &flags(3)));
    let ep3 = members[3].client.clone();
    let got = eventually("read k1 from the learner", &|| logs(&members), || {
        get(&ep3, "k1", true)
    });
    assert_eq!(got, "v1");
    assert!(ctl(&ep0, &["put", "k2", "v2"]).success());
    let got = eventually("read k2 from the learner", &|| logs(&members), || {
        get(&ep3, "k2", true)
    });
    assert_eq!(got, "v2");

    // kill -9 the leader; the two others elect and acknowledge a write.
    let voters: Vec<String> = members[..3].iter().map(|m| m.client.clone()).collect();
    let (leader, ids) = eventually("a leader", &|| logs(&members), || leader_of(&voters));
    let li = ids
        .iter()
        .position(|(_, id)| *id == leader)
        .expect("the leader is a voter");
    members[li].proc.kill();
    let rest: Vec<String> = (0..3)
        .filter(|i| *i != li)
        .map(|i| voters[i].clone())
        .collect();
    let all = rest.join(",");
    eventually("a write after the leader died", &|| logs(&members), || {
        ctl(&all, &["put", "k3", "v3"]).success().then_some(())
    });
    for ep in &rest {
        let got = eventually("read k3", &|| logs(&members), || get(ep, "k3", false));
        assert_eq!(got, "v3");
    }
    let got = eventually("read k3 from the learner", &|| logs(&members), || {
        get(&ep3, "k3", true)
    });
    assert_eq!(got, "v3");
}

#[test]
fn three_members_with_peer_auto_tls() {
    let base = tempfile::tempdir().unwrap();
    cluster_lifecycle(base.path(), &|_| vec!["--peer-auto-tls".to_string()]);
    // The self-signed pairs are where etcd keeps them.
    for m in ["m0", "m1", "m2", "m3"] {
        let d = base.path().join(m).join("fixtures").join("peer");
        assert!(d.join("cert.pem").is_file(), "{}", d.display());
        assert!(d.join("key.pem").is_file(), "{}", d.display());
    }
}

fn ca_flags(ca: &Ca, pair: &(PathBuf, PathBuf)) -> Vec<String> {
    vec![
        format!("--peer-cert-file={}", pair.0.display()),
        format!("--peer-key-file={}", pair.1.display()),
        format!("--peer-trusted-ca-file={}", ca.path.display()),
        "--peer-client-cert-auth=true".to_string(),
    ]
}

#[test]
fn three_members_with_a_peer_ca_and_client_cert_auth() {
    let base = tempfile::tempdir().unwrap();
    let pki = base.path().join("pki");
    let ca = Ca::new(&pki, "peer");
    let pairs: Vec<_> = (0..4)
        .map(|i| ca.peer_pair(&pki, &format!("m{i}")))
        .collect();
    cluster_lifecycle(base.path(), &|i| ca_flags(&ca, &pairs[i]));
}

/// A cluster with `extra` flags on a peer CA; an intruder with `intruder` flags tries to
/// join (after MemberAdd). It must be refused, the refusal logged with `want_log`, and
/// the cluster keep serving.
fn intruder_refused(
    base: &Path,
    ca: &Ca,
    member_cn: &str,
    extra: &[String],
    intruder: Vec<String>,
    want_log: &str,
) {
    let pki = base.join("pki");
    let peers: Vec<String> = (0..3)
        .map(|_| format!("https://127.0.0.1:{}", free_port()))
        .collect();
    let initial: String = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("m{i}={p}"))
        .collect::<Vec<_>>()
        .join(",");
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let mut f = ca_flags(ca, &ca.peer_pair(&pki, member_cn));
            f.extend(extra.iter().cloned());
            spawn(base, &format!("m{i}"), &peers[i], &initial, "new", &f)
        })
        .collect();
    let ep0 = members[0].client.clone();
    eventually("put through m0", &|| logs(&members), || {
        ctl(&ep0, &["put", "k1", "v1"]).success().then_some(())
    });
    let peer3 = format!("https://127.0.0.1:{}", free_port());
    // Retried while an election is still settling ("no leader").
    let url3 = format!("--peer-urls={peer3}");
    eventually("member add", &|| logs(&members), || {
        ctl(&ep0, &["member", "add", "x", &url3])
            .success()
            .then_some(())
    });
    let mut x = spawn(
        base,
        "x",
        &peer3,
        &format!("{initial},x={peer3}"),
        "existing",
        &intruder,
    );
    // Refused: it cannot even fetch the member list, and exits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while x.proc.running() {
        assert!(
            Instant::now() < deadline,
            "intruder still running:\n{}",
            x.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(x.log().contains("cannot fetch cluster info"), "{}", x.log());
    let refused = eventually("the refusal logged", &|| logs(&members), || {
        members
            .iter()
            .map(Member::log)
            .find(|l| l.contains("TLS handshake failed") && l.contains(want_log))
    });
    // A warning (zap JSON level).
    assert!(refused.contains("\"level\":\"warn\""), "{refused}");
    // The cluster keeps serving, and the intruder never became a started member (it has
    // no name in the member list).
    let ep1 = members[1].client.clone();
    eventually("put through m1", &|| logs(&members), || {
        ctl(&ep1, &["put", "k2", "v2"]).success().then_some(())
    });
    assert_eq!(get(&members[2].client, "k2", false).as_deref(), Some("v2"));
    let list = ctl(&ep0, &["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(list.stdout.trim()).unwrap();
    let unstarted = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"].as_str().unwrap_or_default().is_empty())
        .count();
    assert_eq!(unstarted, 1, "{}", list.stdout);
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let pki = base.path().join("pki");
    let ca = Ca::new(&pki, "peer");
    let other = Ca::new(&pki, "other");
    let pair = other.peer_pair(&pki, "m-x");
    // The intruder trusts the cluster's CA (so only the cluster's check can refuse it).
    let mut flags = ca_flags(&ca, &pair);
    flags[2] = format!("--peer-trusted-ca-file={}", ca.path.display());
    intruder_refused(base.path(), &ca, "member", &[], flags, "UnknownIssuer");
}

#[test]
fn a_peer_whose_cn_is_not_allowed_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let pki = base.path().join("pki");
    let ca = Ca::new(&pki, "peer");
    let pair = ca.peer_pair(&pki, "intruder");
    let flags = ca_flags(&ca, &pair);
    intruder_refused(
        base.path(),
        &ca,
        "etcd-peer",
        &["--peer-cert-allowed-cn=etcd-peer".to_string()],
        flags,
        "\"intruder\"",
    );
}

/// Runs `cairn` with `args` expecting a start-up failure; returns stderr.
fn start_fails(args: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut c = clean_command(&cairn_bin());
    let peer = format!("https://127.0.0.1:{}", free_port());
    c.arg(format!("--data-dir={}", dir.path().join("d").display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{}",
            free_port()
        ))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{}",
            free_port()
        ))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=default={peer}"))
        .args(args);
    let o = run(c, b"", Duration::from_secs(30));
    assert!(
        o.code.is_some() && !o.success(),
        "{args:?} did not fail: {o:?}"
    );
    o.stderr
}

#[test]
fn bad_peer_tls_input_fails_start_up_naming_the_flag() {
    let base = tempfile::tempdir().unwrap();
    let ca = Ca::new(base.path(), "peer");
    let (cert, key) = ca.peer_pair(base.path(), "m");
    let (other_cert, _) = ca.peer_pair(base.path(), "n");
    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "cannot listen on TLS for 127.0.0.1:"),
        (
            vec![
                "--peer-cert-file=/nonexistent/c.pem".into(),
                format!("--peer-key-file={}", s(&key)),
                format!("--peer-trusted-ca-file={}", s(&ca.path)),
            ],
            "--peer-cert-file: open /nonexistent/c.pem: no such file or directory",
        ),
        (
            vec![
                format!("--peer-cert-file={}", s(&cert)),
                "--peer-key-file=/nonexistent/k.pem".into(),
                format!("--peer-trusted-ca-file={}", s(&ca.path)),
            ],
            "--peer-key-file: open /nonexistent/k.pem: no such file or directory",
        ),
        (
            vec![
                format!("--peer-cert-file={}", s(&other_cert)),
                format!("--peer-key-file={}", s(&key)),
                format!("--peer-trusted-ca-file={}", s(&ca.path)),
            ],
            "tls: private key does not match public key",
        ),
        (
            vec![format!("--peer-cert-file={}", s(&cert))],
            "--peer-cert-file, --peer-key-file: KeyFile and CertFile must both be present",
        ),
        (
            vec![
                format!("--peer-cert-file={}", s(&cert)),
                format!("--peer-key-file={}", s(&key)),
                "--peer-trusted-ca-file=/nonexistent/ca.pem".into(),
            ],
            "--peer-trusted-ca-file: open /nonexistent/ca.pem: no such file or directory",
        ),
        (
            vec![
                format!("--peer-cert-file={}", s(&cert)),
                format!("--peer-key-file={}", s(&key)),
            ],
            "--peer-trusted-ca-file: needed to verify the members dialed",
        ),
        (
            vec![
                format!("--peer-cert-file={}", s(&cert)),
                format!("--peer-key-file={}", s(&key)),
                format!("--peer-trusted-ca-file={}", s(&ca.path)),
                "--peer-crl-file=/nonexistent/crl.pem".into(),
            ],
            "--peer-crl-file: open /nonexistent/crl.pem: no such file or directory",
        ),
        (
            vec![
                "--peer-auto-tls".into(),
                "--peer-cert-allowed-cn=a".into(),
                "--peer-cert-allowed-hostname=b".into(),
            ],
            "AllowedCN and AllowedHostname are mutually exclusive",
        ),
        (vec!["--peer-auto-tls=maybe".into()], "peer-auto-tls"),
    ];
    for (args, want) in cases {
        let err = start_fails(&args);
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
    }
}
