//! Golden compatibility: the etcdctl script in `tests/golden/script.txt` runs against real
//! etcd and against Cairn, with etcdctl 3.4.23 and 3.5.1, and the transcripts must be equal
//! after masking what legitimately differs between two members (see [`MASKS`]).
//!
//! The reference is etcd 3.5.1 (the release family Cairn presents itself as). The harness
//! and the masks are validated by comparing etcd 3.4.23 with etcd 3.5.1 as well.
//!
//! On a mismatch both transcripts are written next to the test binary's temporary directory
//! (`CARGO_TARGET_TMPDIR/golden-*.txt`) and the first differing lines are shown;
//! `CAIRN_GOLDEN_DUMP=1` writes them on success too.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use regex::Regex;
use support::{etcdctl, http_get, Ctl, Impl, Member};

/// One step of the script.
#[derive(Debug, Clone)]
enum Step {
    Ctl {
        line: String,
        args: Vec<String>,
        stdin: String,
        /// Needs etcdctl 3.5 (a flag 3.4 lacks).
        needs_351: bool,
    },
    Http {
        path: String,
    },
    /// `etcdctl watch`, which never exits on its own: stopped once `lines` lines of standard
    /// output arrived (plus a short grace for extra ones), when it exits, or at a deadline.
    /// Standard input stays open meanwhile (`watch -i` exits at end of input).
    Watch {
        line: String,
        args: Vec<String>,
        stdin: String,
        lines: usize,
    },
}

fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut has = false;
    for c in line.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                has = true;
            }
            ' ' if !in_quote => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    assert!(!in_quote, "unbalanced quote in {line:?}");
    if has {
        out.push(cur);
    }
    out
}

fn script() -> Vec<Step> {
    let text = include_str!("golden/script.txt");
    let mut steps = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(path) = line.strip_prefix("!http ") {
            steps.push(Step::Http {
                path: path.trim().to_string(),
            });
            continue;
        }
        let (line, watch_lines) = match line.strip_prefix("!watch ") {
            Some(rest) => {
                let (n, cmd) = rest.split_once(' ').expect("!watch N COMMAND");
                (cmd, Some(n.parse::<usize>().expect("!watch line count")))
            }
            None => (line, None),
        };
        let (line, needs_351) = match line.strip_prefix("@3.5 ") {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let (cmd, stdin) = match line.strip_suffix(" <<") {
            Some(cmd) => {
                let mut body = String::new();
                for l in lines.by_ref() {
                    if l == "EOF" {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                (cmd, body)
            }
            None => (line, String::new()),
        };
        match watch_lines {
            Some(lines) => steps.push(Step::Watch {
                line: cmd.to_string(),
                args: split_args(cmd),
                stdin,
                lines,
            }),
            None => steps.push(Step::Ctl {
                line: cmd.to_string(),
                args: split_args(cmd),
                stdin,
                needs_351,
            }),
        }
    }
    steps
}

/// The masks, applied in order to every transcript (reference and Cairn alike). Each hides
/// a value that differs between two correct members; nothing else is masked.
const MASKS: &[(&str, &str, &str)] = &[
    // Member and cluster ids are random per cluster (etcd derives them from the time / URLs).
    (
        r#""(cluster_id|member_id|leader|ID)":\d+"#,
        r#""$1":<id>"#,
        "member/cluster ids (JSON)",
    ),
    (
        r#""(ClusterID|MemberID|Leader|ID)" : \d+"#,
        r#""$1" : <id>"#,
        "member/cluster ids (fields)",
    ),
    (
        r"\b[0-9a-f]{12,16}\b",
        "<hexid>",
        "member ids in hex (simple/table output)",
    ),
    // Raft terms and indexes count internal entries (bootstrap conf changes), not client writes.
    (
        r#""(raft_term|raftTerm|raftIndex|raftAppliedIndex)":\d+"#,
        r#""$1":<raft>"#,
        "raft term/index (JSON)",
    ),
    (
        r#""(RaftTerm|RaftIndex|RaftAppliedIndex)" : \d+"#,
        r#""$1" : <raft>"#,
        "raft term/index (fields)",
    ),
    (
        r"(true|false)(, | \| )(true|false)(, | \| )\d+(, | \| )\d+(, | \| )\d+",
        "$1$2$3$4<raft>$5<raft>$6<raft>",
        "raft term/index (simple/table status rows)",
    ),
    // Server versions: Cairn reports a 3.5.x version, the reference its own.
    (
        r#""(version|Version)"( : |:)"[0-9.]+""#,
        r#""$1"$2"<version>""#,
        "server version (status JSON/fields)",
    ),
    (
        r#""(etcdserver)":"[0-9.]+""#,
        r#""$1":"<version>""#,
        "server version (/version)",
    ),
    (
        r"\b3\.[0-9]+\.[0-9]+\b",
        "<version>",
        "server version (simple/table status rows)",
    ),
    // Backend file sizes depend on the page allocation of each engine.
    (
        r#""(dbSize|dbSizeInUse|totalSize)":\d+"#,
        r#""$1":<size>"#,
        "db sizes (JSON)",
    ),
    (
        r#""(DBSize|DBSizeInUse)" : \d+"#,
        r#""$1" : <size>"#,
        "db sizes (fields)",
    ),
    (
        r"\b\d+(\.\d+)? ?[kMG]?B\b",
        "<size>",
        "db sizes (humanized)",
    ),
    // Snapshot file hash and key count cover the whole backend file (bbolt pages, meta keys).
    (
        r#""(hash|totalKey)":\d+,"revision""#,
        r#""$1":<file>,"revision""#,
        "snapshot status file hash",
    ),
    (
        r#""totalKey":\d+"#,
        r#""totalKey":<file>"#,
        "snapshot status key count (all buckets)",
    ),
    // A lease's remaining TTL counts down in whole seconds while the script runs.
    (
        r"remaining\(\d+s\)",
        "remaining(<ttl>)",
        "lease remaining TTL (simple)",
    ),
    // Durations measured by etcdctl.
    (
        r"took = [0-9.]+[a-zµ]+",
        "took = <time>",
        "health check latency (simple)",
    ),
    (
        r#""took":"[^"]*""#,
        r#""took":"<time>""#,
        "health check latency (JSON)",
    ),
    (
        r"\| *[0-9.]+(ns|µs|ms|s) *\|",
        "| <time> |",
        "health check latency (table)",
    ),
];

fn masks() -> &'static Vec<(Regex, &'static str)> {
    static M: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    M.get_or_init(|| {
        MASKS
            .iter()
            .map(|(re, to, _)| (Regex::new(re).expect(re), *to))
            .collect()
    })
}

/// Normalises ASCII tables: cell padding depends on the width of masked values.
fn normalise_table_line(line: &str) -> String {
    if line.starts_with('+') && line.chars().all(|c| c == '+' || c == '-') {
        return "+--+".to_string();
    }
    if line.starts_with('|') && line.ends_with('|') {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        return format!("| {} |", cells.join(" | "));
    }
    line.to_string()
}

/// Drops log lines etcdctl writes to stderr (zap JSON in 3.5, capnslog in 3.4); keeps the rest
/// (error messages and notices).
fn strip_logs(stderr: &str) -> String {
    static LOG34: OnceLock<Regex> = OnceLock::new();
    let log34 = LOG34
        .get_or_init(|| Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [A-Z] \| ").unwrap());
    stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\":") && !log34.is_match(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// etcd lists a lease's attached keys in Go map order (random): sorted here for both sides.
fn sort_attached_keys(line: &str) -> String {
    let Some((head, rest)) = line.split_once("attached keys([") else {
        return line.to_string();
    };
    let Some((keys, tail)) = rest.split_once("])") else {
        return line.to_string();
    };
    let mut k: Vec<&str> = keys.split(' ').collect();
    k.sort_unstable();
    format!("{head}attached keys([{}]){tail}", k.join(" "))
}

fn mask(text: &str, m: &Member, dir: &Path) -> String {
    let t = text
        .replace(&dir.display().to_string(), "{dir}")
        .replace(&m.client_addr(), "<client>")
        .replace(&format!("127.0.0.1:{}", m.peer_port), "<peer>");
    let mut t: String = t
        .lines()
        .map(normalise_table_line)
        .map(|l| sort_attached_keys(&l))
        .map(|l| l + "\n")
        .collect();
    for (re, to) in masks() {
        t = re.replace_all(&t, *to).into_owned();
    }
    t
}

/// Runs the script against a fresh member and returns the masked transcript.
fn transcript(server: Impl, ctl: Ctl) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let member = Member::start(server, "golden", &tmp.path().join("data"), &[]);
    let ep = member.client_addr();
    let mut out = String::new();
    // `{lease}`: the id the last `lease grant` printed (etcd chooses it).
    let mut lease = String::from("0");
    let grant = Regex::new(r"^lease ([0-9a-f]+) granted with TTL").unwrap();
    let subst = |a: &String, lease: &str| {
        a.replace("{dir}", &work.display().to_string())
            .replace("{lease}", lease)
    };
    for step in script() {
        match step {
            Step::Ctl {
                needs_351: true, ..
            } if ctl == Ctl::V3423 => {}
            Step::Ctl {
                line, args, stdin, ..
            } => {
                let args: Vec<String> = args.iter().map(|a| subst(a, &lease)).collect();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = etcdctl(ctl, &ep, &argv, stdin.as_bytes());
                if let Some(c) = grant.captures(&o.stdout) {
                    lease = c[1].to_string();
                }
                out.push_str(&format!("$ etcdctl {line}\n"));
                if !stdin.is_empty() {
                    for l in stdin.lines() {
                        out.push_str(&format!("< {l}\n"));
                    }
                }
                out.push_str(&format!("[exit {:?}]\n", o.code));
                out.push_str(&mask(&o.stdout, &member, &work));
                let err = strip_logs(&o.stderr);
                if !err.is_empty() {
                    out.push_str("--- stderr\n");
                    out.push_str(&mask(&err, &member, &work));
                }
            }
            Step::Watch {
                line,
                args,
                stdin,
                lines,
            } => {
                let args: Vec<String> = args.iter().map(|a| subst(a, &lease)).collect();
                let stdin = subst(&stdin, &lease);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = bounded_watch(ctl, &ep, &argv, stdin.as_bytes(), lines);
                // A watch stopped before printing what the script expects would compare
                // equal on two silent servers: refuse it.
                let printed = o.stdout.lines().count();
                assert!(
                    printed >= lines || matches!(o.code, WatchEnd::Exited(_)),
                    "{}: `etcdctl {line}` printed {printed} of {lines} lines within {:?}:\n{}{}",
                    server.label(),
                    WATCH_DEADLINE,
                    o.stdout,
                    o.stderr
                );
                out.push_str(&format!("$ etcdctl {line}   (until {lines} lines)\n"));
                for l in stdin.lines() {
                    out.push_str(&format!("< {l}\n"));
                }
                match o.code {
                    WatchEnd::Exited(code) => out.push_str(&format!("[exit {code:?}]\n")),
                    WatchEnd::Stopped => out.push_str("[stopped]\n"),
                }
                out.push_str(&mask(&o.stdout, &member, &work));
                let err = strip_logs(&o.stderr);
                if !err.is_empty() {
                    out.push_str("--- stderr\n");
                    out.push_str(&mask(&err, &member, &work));
                }
            }
            Step::Http { path } => {
                out.push_str(&format!("$ GET {path}\n"));
                match http_get(&ep, &path) {
                    Ok((code, body)) => {
                        out.push_str(&format!("[{code}]\n"));
                        out.push_str(&mask(&body, &member, &work));
                        out.push('\n');
                    }
                    Err(e) => out.push_str(&format!("[error {e}]\n")),
                }
            }
        }
    }
    drop(member);
    out
}

/// How a bounded watch ended.
enum WatchEnd {
    /// etcdctl exited by itself (e.g. the watch was cancelled by the server).
    Exited(Option<i32>),
    /// The harness stopped it.
    Stopped,
}

struct WatchOutput {
    code: WatchEnd,
    stdout: String,
    stderr: String,
}

/// Longest a watch step may run.
const WATCH_DEADLINE: Duration = Duration::from_secs(5);
/// How long a watch keeps running after the expected lines, to catch extra output.
const WATCH_GRACE: Duration = Duration::from_millis(300);

/// Runs `etcdctl watch ...` (which never ends on its own) until `lines` lines of output
/// arrived and then [`WATCH_GRACE`] more, until it exits, or until [`WATCH_DEADLINE`].
fn bounded_watch(ctl: Ctl, ep: &str, args: &[&str], stdin: &[u8], lines: usize) -> WatchOutput {
    let mut c = support::clean_command(&support::etcdctl_bin(ctl));
    c.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={ep}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    // Kept open until the end: `watch -i` stops at end of input.
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write watch input");
    input.flush().expect("flush watch input");
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            match l {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut got = Vec::new();
    let mut until = start + WATCH_DEADLINE;
    let mut exited = false;
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        match rx.recv_timeout(until - now) {
            Ok(l) => {
                got.push(l);
                if got.len() == lines {
                    until = Instant::now() + WATCH_GRACE;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited = true;
                break;
            }
        }
    }
    let code = if exited {
        // Standard output closed: the process is ending by itself.
        let deadline = Instant::now() + WATCH_DEADLINE;
        loop {
            match child.try_wait().expect("wait") {
                Some(st) => break WatchEnd::Exited(st.code()),
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break WatchEnd::Stopped;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    } else {
        let _ = child.kill();
        let _ = child.wait();
        WatchEnd::Stopped
    };
    drop(input);
    let _ = reader.join();
    // Lines that arrived between the last receive and the kill count too.
    got.extend(rx.try_iter());
    let stderr = err_reader.join().unwrap_or_default();
    WatchOutput {
        code,
        stdout: got.iter().map(|l| format!("{l}\n")).collect(),
        stderr,
    }
}

fn compare(label: &str, reference: (&str, &str), candidate: (&str, &str)) {
    let (ref_name, ref_text) = reference;
    let (cand_name, cand_text) = candidate;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rp = dir.join(format!("golden-{label}-{ref_name}.txt"));
    let cp = dir.join(format!("golden-{label}-{cand_name}.txt"));
    // CAIRN_GOLDEN_DUMP=1 keeps the transcripts even when they agree (to review the masks).
    if ref_text != cand_text || std::env::var_os("CAIRN_GOLDEN_DUMP").is_some() {
        let _ = std::fs::write(&rp, ref_text);
        let _ = std::fs::write(&cp, cand_text);
    }
    if ref_text == cand_text {
        return;
    }
    let rl: Vec<&str> = ref_text.lines().collect();
    let cl: Vec<&str> = cand_text.lines().collect();
    let first = rl
        .iter()
        .zip(&cl)
        .position(|(a, b)| a != b)
        .unwrap_or(rl.len().min(cl.len()));
    // The command the difference belongs to.
    let cmd = rl[..first.min(rl.len())]
        .iter()
        .rev()
        .find(|l| l.starts_with("$ "))
        .unwrap_or(&"");
    let show = |v: &[&str]| v[first.min(v.len())..(first + 8).min(v.len())].join("\n");
    panic!(
        "{label}: transcripts differ at line {} (after `{cmd}`)\n--- {ref_name}\n{}\n--- {cand_name}\n{}\n\
         full transcripts: {} and {}",
        first + 1,
        show(&rl),
        show(&cl),
        rp.display(),
        cp.display()
    );
}

#[test]
fn script_parses() {
    let steps = script();
    assert!(steps.len() > 80, "{}", steps.len());
    let txns = steps
        .iter()
        .filter(
            |s| matches!(s, Step::Ctl { args, stdin, .. } if args[0] == "txn" && !stdin.is_empty()),
        )
        .count();
    assert_eq!(txns, 5);
    assert_eq!(split_args("put 'a b' ''"), vec!["put", "a b", ""]);
}

#[test]
fn masks_hide_only_what_they_document() {
    let m = masks();
    let apply = |s: &str| {
        let mut t = s.to_string();
        for (re, to) in m {
            t = re.replace_all(&t, *to).into_owned();
        }
        t
    };
    // Revisions, versions of keys, counts and values stay visible.
    let kv = r#"{"header":{"cluster_id":1,"member_id":2,"revision":7,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":5,"version":3,"value":"YmFy"}],"count":1}"#;
    assert_eq!(
        apply(kv),
        r#"{"header":{"cluster_id":<id>,"member_id":<id>,"revision":7,"raft_term":<raft>},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":5,"version":3,"value":"YmFy"}],"count":1}"#
    );
    assert_eq!(apply("\"Version\" : 3"), "\"Version\" : 3");
    assert_eq!(
        apply("127.0.0.1:1, 628170c800dbcee, 3.5.1, 20 kB, true, false, 2, 5, 5, "),
        "127.0.0.1:1, <hexid>, <version>, <size>, true, false, <raft>, <raft>, <raft>, "
    );
    assert_eq!(
        apply(r#"{"hash":12,"revision":3,"totalKey":7,"totalSize":20480}"#),
        r#"{"hash":<file>,"revision":3,"totalKey":<file>,"totalSize":<size>}"#
    );
    // A lease's remaining TTL is hidden, its granted TTL is not; attached keys are sorted.
    assert_eq!(
        sort_attached_keys(&apply(
            "lease 1 granted with TTL(600s), remaining(598s), attached keys([b c a])"
        )),
        "lease 1 granted with TTL(600s), remaining(<ttl>), attached keys([a b c])"
    );
    // endpoint hashkv's hash is compared as it is (same algorithm as etcd).
    assert_eq!(
        apply(r#""hash":3141,"compact_revision":5"#),
        r#""hash":3141,"compact_revision":5"#
    );
}

/// Answers etcd 3.4.23 gives differently from 3.5.1 (Cairn follows 3.5.1), rewritten to the
/// 3.5.1 form before comparing the two real releases.
const KNOWN_3423_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "$ etcdctl alarm list -w json\n[exit Some(0)]\n{}\n",
        "$ etcdctl alarm list -w json\n[exit Some(0)]\n\
         {\"header\":{\"cluster_id\":<id>,\"member_id\":<id>,\"revision\":21,\"raft_term\":<raft>}}\n",
        "3.4 sends no header with an empty alarm list",
    ),
    (
        "{\"health\":\"true\"}",
        "{\"health\":\"true\",\"reason\":\"\"}",
        "3.5 added the `reason` field to /health",
    ),
];

#[test]
fn etcd_3423_and_351_agree() {
    // Validates the harness and masks on two real etcd releases.
    let a = transcript(Impl::Etcd351, Ctl::V3423);
    let mut b = transcript(Impl::Etcd3423, Ctl::V3423);
    for (old, new, _why) in KNOWN_3423_DIFFERENCES {
        assert!(
            b.contains(old),
            "expected 3.4.23 difference not seen: {old}"
        );
        b = b.replace(old, new);
    }
    compare("etcd-vs-etcd", ("etcd-3.5.1", &a), ("etcd-3.4.23", &b));
}

#[test]
fn cairn_matches_etcd_with_etcdctl_351() {
    let a = transcript(Impl::Etcd351, Ctl::V351);
    let b = transcript(Impl::Cairn, Ctl::V351);
    compare("etcdctl-3.5.1", ("etcd-3.5.1", &a), ("cairn", &b));
}

#[test]
fn cairn_matches_etcd_with_etcdctl_3423() {
    let a = transcript(Impl::Etcd351, Ctl::V3423);
    let b = transcript(Impl::Cairn, Ctl::V3423);
    compare("etcdctl-3.4.23", ("etcd-3.5.1", &a), ("cairn", &b));
}

// --- the `cairn` command line, end to end ---------------------------------------------------

fn run_server_binary(bin: &Path, args: &[&str]) -> support::Output {
    let mut c = support::clean_command(bin);
    c.args(args);
    support::run(c, b"", std::time::Duration::from_secs(20))
}

#[test]
fn cairn_rejects_bad_flags_like_etcd() {
    let etcd = support::etcd_bin(Impl::Etcd351);
    let cairn = support::etcd_bin(Impl::Cairn);
    // Undefined flag and a stray argument: etcd's message and exit code.
    for (args, text, code) in [
        (
            &["--no-such-flag"][..],
            "flag provided but not defined: -no-such-flag",
            2,
        ),
        (&["--name=x", "stray"][..], "'stray' is not a valid flag", 1),
    ] {
        for bin in [&etcd, &cairn] {
            let o = run_server_binary(bin, args);
            assert_eq!(o.code, Some(code), "{} {args:?}: {o:?}", bin.display());
            assert!(o.stderr.contains(text), "{} {args:?}: {o:?}", bin.display());
        }
    }
    // A flag Cairn does not support yet is named, and nothing starts.
    let o = run_server_binary(&cairn, &["--wal-dir=/tmp/elsewhere"]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(
        o.stderr.contains("--wal-dir is not supported yet by cairn"),
        "{o:?}"
    );
    // --version: etcd's line layout.
    let o = run_server_binary(&cairn, &["--version"]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.starts_with("cairn Version: "), "{o:?}");
    assert!(o.stdout.contains("\netcd API Version: 3.5."), "{o:?}");
}

/// Waits for `/health` on `addr` while `child` runs.
fn wait_healthy(child: &mut std::process::Child, addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("cairn exited during start-up: {st}");
        }
        if let Ok((200, body)) = http_get(addr, "/health") {
            assert_eq!(body, r#"{"health":"true","reason":""}"#);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cairn never became healthy on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn member_names(addr: &str) -> String {
    let o = etcdctl(Ctl::V351, addr, &["member", "list"], b"");
    assert!(o.success(), "{o:?}");
    o.stdout
}

#[test]
fn cairn_reads_etcd_environment_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let (cp, pp) = (support::free_port(), support::free_port());
    let client = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let mut c = support::clean_command(&support::etcd_bin(Impl::Cairn));
    c.env("ETCD_NAME", "from-env")
        .env("ETCD_DATA_DIR", tmp.path().join("env-data"))
        .env("ETCD_LISTEN_CLIENT_URLS", &client)
        .env("ETCD_ADVERTISE_CLIENT_URLS", &client)
        .env("ETCD_LISTEN_PEER_URLS", &peer)
        .env("ETCD_INITIAL_ADVERTISE_PEER_URLS", &peer)
        .env("ETCD_INITIAL_CLUSTER", format!("from-env={peer}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(c.spawn().expect("spawn cairn"));
    let addr = format!("127.0.0.1:{cp}");
    wait_healthy(&mut child.0, &addr);
    assert!(member_names(&addr).contains(", from-env, "));
    assert!(tmp.path().join("env-data/member").is_dir());
}

#[test]
fn cairn_reads_an_etcd_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (cp, pp) = (support::free_port(), support::free_port());
    let yaml = format!(
        "name: 'from-yaml'\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:{cp}\n\
         advertise-client-urls: http://127.0.0.1:{cp}\nlisten-peer-urls: http://127.0.0.1:{pp}\n\
         initial-advertise-peer-urls: http://127.0.0.1:{pp}\n\
         initial-cluster: from-yaml=http://127.0.0.1:{pp}\ninitial-cluster-state: new\n\
         snapshot-count: 10000\nenable-v2: false\nclient-transport-security:\n  auto-tls: false\n",
        tmp.path().join("yaml-data").display()
    );
    let file = tmp.path().join("etcd.conf.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut c = support::clean_command(&support::etcd_bin(Impl::Cairn));
    // Flags next to --config-file are ignored, as etcd does.
    c.arg(format!("--config-file={}", file.display()))
        .arg("--name=ignored")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(c.spawn().expect("spawn cairn"));
    let addr = format!("127.0.0.1:{cp}");
    wait_healthy(&mut child.0, &addr);
    assert!(member_names(&addr).contains(", from-yaml, "));
    assert!(tmp.path().join("yaml-data/member").is_dir());
}

#[test]
fn cairn_without_flags_serves_127_0_0_1_2379_with_data_in_default_etcd() {
    if std::net::TcpStream::connect("127.0.0.1:2379").is_ok() {
        panic!("something already listens on 127.0.0.1:2379; this test needs the port free");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut c = support::clean_command(&support::etcd_bin(Impl::Cairn));
    c.current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(c.spawn().expect("spawn cairn"));
    wait_healthy(&mut child.0, "127.0.0.1:2379");
    assert!(member_names("127.0.0.1:2379").contains(", default, http://localhost:2380, "));
    assert!(tmp.path().join("default.etcd/member").is_dir());
    // /livez and /readyz (etcd 3.5.11+) answer too.
    assert_eq!(
        http_get("127.0.0.1:2379", "/livez").unwrap(),
        (200, "ok\n".to_string())
    );
    let (code, body) = http_get("127.0.0.1:2379", "/readyz?verbose").unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
         [+]non_learner ok\nok\n"
    );
}

#[test]
fn watch_progress_notify_interval_flag_reaches_the_server() {
    // kubeadm passes --experimental-watch-progress-notify-interval=5s; a short period here makes
    // `etcdctl watch --progress-notify` print a notification well within the watch deadline,
    // which etcd's default of 10 minutes would not. Same flag, same output on etcd and Cairn.
    let mut seen = Vec::new();
    for which in [Impl::Etcd351, Impl::Cairn] {
        let tmp = tempfile::tempdir().unwrap();
        let m = Member::start(
            which,
            "progress",
            &tmp.path().join("data"),
            &["--experimental-watch-progress-notify-interval=200ms"],
        );
        let o = bounded_watch(
            Ctl::V351,
            &m.client_addr(),
            &["watch", "--progress-notify", "k"],
            b"",
            1,
        );
        let first = o.stdout.lines().next().unwrap_or_default().to_string();
        assert!(
            first.starts_with("progress notify: "),
            "{}: no progress notification: {:?} {:?}",
            which.label(),
            o.stdout,
            o.stderr
        );
        seen.push(first);
    }
    assert_eq!(seen[0], seen[1]);
}
