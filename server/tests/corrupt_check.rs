//! `--experimental-initial-corrupt-check`: a 3-member Cairn cluster; one member is stopped
//! and one value in its backend (`member/snap/db`, bucket `key`) is changed offline. Restarted
//! with the flag, it refuses to start with etcd's error (`<id> found data inconsistency with
//! peers`); an unaltered member restarts with the flag and serves; the altered one starts
//! without the flag (so the refusal is the check's doing).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_testkit::{cairn_bin, etcdctl, is_healthy, Cluster, Ctl};

const FLAG: &str = "--experimental-initial-corrupt-check=true";

fn wait_healthy(c: &mut Cluster, i: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = c.nodes[i].client_addr();
    loop {
        assert!(
            c.nodes[i].running(),
            "member {i} exited:\n{}",
            c.nodes[i].log_tail(40)
        );
        if is_healthy(&addr) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {i} not healthy:\n{}",
            c.nodes[i].log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ctl_ok(endpoint: &str, args: &[&str]) -> String {
    let o = etcdctl(Ctl::V351, endpoint, args, b"");
    assert!(o.success(), "etcdctl {args:?}: {}{}", o.stdout, o.stderr);
    o.stdout
}

/// Waits until member `i` serves `key` = `value` from its own state.
fn wait_applied(c: &Cluster, i: usize, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ep = c.nodes[i].endpoint();
    loop {
        let o = etcdctl(
            Ctl::V351,
            &ep,
            &["get", key, "--print-value-only", "--consistency=s"],
            b"",
        );
        if o.success() && o.stdout.trim() == value {
            return;
        }
        assert!(Instant::now() < deadline, "member {i} lacks {key}={value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rewrites, in a stopped member's backend, the one revision whose value contains `from`.
fn alter_value(db: &std::path::Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let db = cairn_engine::Db::open(db, cairn_engine::Options::default()).expect("open db");
    let found: Vec<(Vec<u8>, Vec<u8>)> = {
        let tx = db.begin_read().unwrap();
        let b = tx.bucket(b"key").expect("key bucket");
        let mut cur = b.cursor();
        let mut item = cur.first();
        let mut v = Vec::new();
        while let Some((k, val)) = item {
            if let Some(at) = val.windows(from.len()).position(|w| w == from) {
                let mut new = val.to_vec();
                new[at..at + to.len()].copy_from_slice(to);
                v.push((k.to_vec(), new));
            }
            item = cur.next();
        }
        v
    };
    assert_eq!(found.len(), 1, "one revision holds {from:?}");
    let mut tx = db.begin_write().unwrap();
    {
        let mut b = tx.bucket_mut(b"key").unwrap();
        b.put(&found[0].0, &found[0].1).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn initial_corrupt_check_refuses_an_altered_member() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::layout(
        cairn_bin(),
        tmp.path(),
        3,
        format!("corrupt-{}", std::process::id()),
        vec![
            "--heartbeat-interval=50".into(),
            "--election-timeout=500".into(),
        ],
    )
    .unwrap();
    for n in &mut c.nodes {
        n.proc.env("RUST_LOG", "info");
    }
    // A new member has nothing to compare: the flag changes nothing at bootstrap.
    for i in 0..3 {
        let mut args = c.args(i);
        args.push(FLAG.into());
        c.nodes[i].proc.spawn(&args).unwrap();
    }
    for i in 0..3 {
        wait_healthy(&mut c, i);
    }
    let ep0 = c.nodes[0].endpoint();
    for k in 0..10 {
        ctl_ok(&ep0, &["put", &format!("k{k}"), &format!("value-{k}")]);
    }
    for i in 0..3 {
        wait_applied(&c, i, "k9", "value-9");
    }
    let ids: HashMap<String, String> = ctl_ok(&ep0, &["member", "list"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[2].to_string(), f[0].to_string())
        })
        .collect();
    let id2 = ids["m2"].clone();

    // m2: stopped, one value changed offline, restarted with the check: refused.
    c.nodes[2].proc.stop();
    alter_value(
        &c.nodes[2].data_dir.join("member/snap/db"),
        b"value-3",
        b"VALUE-3",
    );
    let mut args = c.args(2);
    args.push(FLAG.into());
    let log_before = c.nodes[2].log().len();
    c.nodes[2].proc.spawn(&args).unwrap();
    let exit = c.nodes[2].proc.wait_exit(Duration::from_secs(60));
    let log = c.nodes[2].log()[log_before..].to_string();
    assert!(
        matches!(exit, Some(Some(code)) if code != 0),
        "the altered member must refuse to start, got {exit:?}:\n{log}"
    );
    assert!(
        log.contains(&format!("{id2} found data inconsistency with peers")),
        "{log}"
    );
    assert!(
        log.contains("found different hash values from remote peer"),
        "{log}"
    );
    assert!(!is_healthy(&c.nodes[2].client_addr()));

    // m1: unaltered, restarted with the check (m2 is down: passed over): serves.
    c.nodes[1].proc.stop();
    let mut args = c.args(1);
    args.push(FLAG.into());
    let log_before = c.nodes[1].log().len();
    c.nodes[1].proc.spawn(&args).unwrap();
    wait_healthy(&mut c, 1);
    let log = c.nodes[1].log()[log_before..].to_string();
    assert!(log.contains("starting initial corruption check"), "{log}");
    assert!(log.contains("failed hash kv request"), "m2 is down:\n{log}");
    assert!(
        log.contains("initial corruption checking passed; no corruption"),
        "{log}"
    );
    assert_eq!(
        ctl_ok(&c.nodes[1].endpoint(), &["get", "k3", "--print-value-only"]).trim(),
        "value-3"
    );

    // Without the flag the altered member starts: the refusal was the check's.
    c.spawn(2).unwrap();
    wait_healthy(&mut c, 2);
}
