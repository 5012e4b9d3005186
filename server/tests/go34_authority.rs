//! Go clients of etcd 3.4 send the endpoint URL as the HTTP/2 `:authority`
//! (`http://127.0.0.1:2379`) on their per-endpoint connections. etcd serves them; so must
//! Cairn (server/src/server/authority.rs). etcdctl 3.4.23's `endpoint status`,
//! `endpoint hashkv` and `defrag` use such connections.

use cairn_testkit::{etcdctl, is_healthy, Ctl, Impl, Member};

#[test]
fn etcdctl_34_with_http_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Member::start(Impl::Cairn, "m1", &tmp.path().join("data"), &[]);
    let url = m.endpoint();
    let bare = m.client_addr();
    let ok = |endpoint: &str, args: &[&str]| {
        let o = etcdctl(Ctl::V3423, endpoint, args, b"");
        assert!(
            o.success(),
            "etcdctl 3.4.23 --endpoints={endpoint} {args:?} failed:\n{}{}\ncairn log:\n{}",
            o.stdout,
            o.stderr,
            m.log_tail()
        );
        o.stdout
    };

    ok(&url, &["put", "k", "v1"]);
    ok(&url, &["put", "k", "v2"]);

    // The member id, from a command whose connection carries a bare authority.
    let list = ok(&bare, &["member", "list"]);
    let id = list
        .lines()
        .next()
        .and_then(|l| l.split(',').next())
        .expect("member list line")
        .trim()
        .to_string();
    assert!(
        u64::from_str_radix(&id, 16).is_ok_and(|v| v != 0),
        "member id {id:?} in {list:?}"
    );

    // `endpoint status`: "<endpoint>, <id>, <version>, <db size>, <is leader>, ..."
    let status = ok(&url, &["endpoint", "status"]);
    let fields: Vec<&str> = status.trim().split(", ").collect();
    assert!(fields.len() >= 9, "endpoint status: {status:?}");
    assert_eq!(fields[0], url, "{status:?}");
    assert_eq!(fields[1], id, "{status:?}");
    assert!(fields[2].starts_with("3."), "version in {status:?}");
    assert_eq!(fields[4], "true", "the only member leads: {status:?}");

    // `endpoint hashkv`: "<endpoint>, <hash>", the hash of the same data as through a bare
    // endpoint.
    let hashkv = ok(&url, &["endpoint", "hashkv"]);
    let (ep, hash) = hashkv
        .trim()
        .split_once(", ")
        .expect("endpoint hashkv line");
    assert_eq!(ep, url);
    let hash: u32 = hash
        .parse()
        .unwrap_or_else(|_| panic!("hash in {hashkv:?}"));
    assert_ne!(hash, 0);
    let again = ok(&bare, &["endpoint", "hashkv"]);
    assert_eq!(again.trim(), format!("{bare}, {hash}"));

    // `defrag`.
    let defrag = ok(&url, &["defrag"]);
    assert_eq!(
        defrag.trim(),
        format!("Finished defragmenting etcd member[{url}]")
    );

    // The data is still there and the member still serves both kinds of endpoint.
    assert_eq!(ok(&url, &["get", "k", "--print-value-only"]).trim(), "v2");
    let o = etcdctl(Ctl::V3423, &url, &["endpoint", "health"], b"");
    let text = format!("{}{}", o.stdout, o.stderr);
    assert!(
        o.success() && text.contains(&format!("{url} is healthy")),
        "{text}"
    );
    assert!(is_healthy(&bare));
}
