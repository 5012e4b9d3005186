//! Golden compatibility of the cluster commands: the same etcdctl 3.5.1 session runs against a
//! 3-member etcd 3.5.1 cluster and against a 3-member Cairn cluster, and the two transcripts
//! must be equal once what legitimately differs between two runs is normalised.
//!
//! The session ([`session`]) covers `member list` (simple, table, JSON), `endpoint status
//! --cluster` and `endpoint health --cluster` (simple, table, JSON), `member add --learner`
//! (with the `ETCD_*` lines, which then start the new member with `--initial-cluster-state
//! existing`), `member promote` (of an unstarted learner, of a caught-up learner, of a voter,
//! of an unknown id), `move-leader` (to a follower, to the leader itself, to a learner, to an
//! unknown id, through a follower endpoint only), `member update`, `member remove` (of a
//! running member, which must then exit, and of an unknown id), and the refusals etcd gives
//! (second learner, duplicate peer URL). Steps that are not part of the contract run
//! unrecorded: waiting for the cluster, making m0 the leader, retrying `member add` while etcd
//! says "unhealthy cluster" (it refuses reconfiguration for 5 s after start) and `member
//! promote` while the started learner is still catching up.
//!
//! Also checked: the bootstrap member ids and cluster id equal etcd's for the same peer URLs
//! and token, and once every member answers `/health`, `member list` shows every member's
//! name and client URLs (etcd serves clients only after publishing them; for Cairn this race
//! is reported on stderr, not failed).
//!
//! # What is normalised, and why (nothing else is)
//! - **Member ids** (hex in simple/table output, decimal in JSON) become `<id:NAME>` (the
//!   spaces etcdctl's `%16x` pads a short id with go too): etcd
//!   derives a bootstrap member's id from its peer URLs and the cluster token (ports differ
//!   per run) and an added member's id from the clock. The **cluster id** becomes `<cluster>`.
//!   [`cairn_cluster_matches_etcd`] runs both clusters on the same ports and token and checks
//!   the raw bootstrap member ids and cluster id are equal as well (etcd's derivation).
//! - The `member_id` of a JSON response **header** outside `endpoint status` becomes
//!   `<responder>` (etcdctl picks any endpoint); in `endpoint status` it stays `<id:NAME>` and
//!   must name the member of that row's endpoint.
//! - **Ports** (`127.0.0.1:P`) become `<NAME-client>` / `<NAME-peer>` by role; ports are free
//!   ports picked per run.
//! - **Row order** of `member list`, `endpoint status/health` (lines, table rows, JSON arrays)
//!   and the entries of `ETCD_INITIAL_CLUSTER` are sorted: etcd orders members by id (random)
//!   and `endpoint health` checks endpoints concurrently.
//! - **Raft term and indexes** (`raft_term`, `raftTerm`, `raftIndex`, `raftAppliedIndex`, the
//!   table/simple columns) become `<raft>`: they count internal entries (conf changes, leader
//!   no-ops), which an implementation may write differently.
//! - **Server version** becomes `<version>`, **db sizes** `<size>` (page allocation differs),
//!   **durations** measured by etcdctl `<time>`.
//! - etcdctl's **client log lines** on stderr (zap JSON) are reduced to their `error` field
//!   (which carries the gRPC status code, so codes are compared) and deduplicated.
//! - JSON objects are re-serialised with sorted keys (the field order is etcdctl's, not the
//!   server's); which fields are present (Go's `omitempty`, e.g. `isLearner`) is compared.
//!
//! Exit codes, stdout and stderr texts, headers, columns, leader/learner flags, names, URLs (by
//! role), revisions and error messages are compared as they are.
//!
//! On a mismatch both transcripts are written to `CARGO_TARGET_TMPDIR/cluster-golden-*.txt`
//! and every differing command is listed; `CAIRN_GOLDEN_DUMP=1` writes them on success too,
//! and copies the members' logs to `CARGO_TARGET_TMPDIR/cluster-golden-logs-*`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::{Captures, Regex};
use serde_json::Value;
use support::{etcd_bin, etcdctl, free_port, is_healthy, Ctl, Flags, Impl, Output, Proc};

/// Cluster token of both runs (part of etcd's member id derivation).
const TOKEN: &str = "golden-cluster";
/// Raft timing of every member: etcd's defaults, steady on a loaded 2-core machine (a
/// spontaneous election would change the IS LEADER column).
const TIMING: [&str; 2] = ["--heartbeat-interval=100", "--election-timeout=1000"];
/// The bootstrap members.
const BOOT: [&str; 3] = ["m0", "m1", "m2"];
/// How long a member may take to start, a learner to catch up.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a removed member may take to notice and exit (etcd: about a second).
const REMOVED_EXIT: Duration = Duration::from_secs(15);

/// The ports of one run, by role (`m0-client`, `m0-peer`, ..., `newm-peer2`, `spare-peer`).
#[derive(Clone, Debug)]
struct Ports(Vec<(String, u16)>);

impl Ports {
    fn pick() -> Ports {
        let mut v = Vec::new();
        for name in BOOT.iter().chain(&["newm"]) {
            v.push((format!("{name}-client"), free_port()));
            v.push((format!("{name}-peer"), free_port()));
        }
        v.push(("newm-peer2".to_string(), free_port()));
        v.push(("spare-peer".to_string(), free_port()));
        Ports(v)
    }

    fn get(&self, role: &str) -> u16 {
        self.0
            .iter()
            .find(|(r, _)| r == role)
            .unwrap_or_else(|| panic!("no port for {role}"))
            .1
    }

    fn url(&self, role: &str) -> String {
        format!("http://127.0.0.1:{}", self.get(role))
    }

    fn addr(&self, role: &str) -> String {
        format!("127.0.0.1:{}", self.get(role))
    }

    fn role_of(&self, port: u16) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, p)| *p == port)
            .map(|(r, _)| r.as_str())
    }
}

/// One server process of the cluster; killed on drop.
struct Node {
    name: String,
    proc: Proc,
}

impl Node {
    fn spawn(
        which: Impl,
        dir: &Path,
        name: &str,
        ports: &Ports,
        initial_cluster: &str,
        state: &str,
    ) -> Node {
        let mut proc = Proc::new(etcd_bin(which), dir.join(format!("{name}.log")));
        if which == Impl::Cairn {
            proc.default_env("RUST_LOG", "warn");
        }
        let client = ports.url(&format!("{name}-client"));
        let peer = ports.url(&format!("{name}-peer"));
        let flags = Flags {
            name: name.to_string(),
            data_dir: dir.join(name),
            client_url: client,
            listen_peer_url: peer.clone(),
            advertise_peer_url: peer,
            initial_cluster: initial_cluster.to_string(),
            initial_cluster_state: Some(state.to_string()),
            initial_cluster_token: Some(TOKEN.to_string()),
            extra: TIMING.iter().map(|f| f.to_string()).collect(),
        };
        proc.spawn(&flags.args())
            .unwrap_or_else(|e| panic!("spawn {}: {e}", which.label()));
        Node {
            name: name.to_string(),
            proc,
        }
    }

    fn log_tail(&self) -> String {
        self.proc.log_tail(30)
    }

    /// Panics (with the log) when the process has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(st) = self.proc.exited() {
            panic!(
                "{} exited ({st}) while {what}; log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Waits up to `limit` for the process to exit by itself; its exit code if it did.
    fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        self.proc.wait_exit(limit)
    }
}

// --- normalisation ---------------------------------------------------------------------------

/// What one run knows about its cluster: used to normalise its transcript.
#[derive(Clone, Debug, Default)]
struct Known {
    /// Member id → name.
    ids: Vec<(u64, String)>,
    cluster: u64,
    ports: Option<Ports>,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect(pattern))
}

/// JSON fields holding a member or cluster id.
const ID_FIELDS: &[&str] = &["ID", "member_id", "leader", "cluster_id"];
const RAFT_FIELDS: &[&str] = &["raft_term", "raftTerm", "raftIndex", "raftAppliedIndex"];
const SIZE_FIELDS: &[&str] = &["dbSize", "dbSizeInUse"];

impl Known {
    fn id_label(&self, id: u64) -> String {
        if id == self.cluster {
            return "<cluster>".to_string();
        }
        match self.ids.iter().find(|(i, _)| *i == id) {
            Some((_, name)) => format!("<id:{name}>"),
            None => "<unknown-id>".to_string(),
        }
    }

    fn name_of(&self, id: u64) -> Option<&str> {
        self.ids
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.as_str())
    }

    /// Ports and hex ids in free text.
    fn mask_text(&self, s: &str) -> String {
        static PORT: OnceLock<Regex> = OnceLock::new();
        static HEX: OnceLock<Regex> = OnceLock::new();
        static PAD: OnceLock<Regex> = OnceLock::new();
        static VERSION: OnceLock<Regex> = OnceLock::new();
        static SIZE: OnceLock<Regex> = OnceLock::new();
        static TOOK: OnceLock<Regex> = OnceLock::new();
        static RAFT: OnceLock<Regex> = OnceLock::new();
        let s = re(&PORT, r"127\.0\.0\.1:(\d+)").replace_all(s, |c: &Captures| {
            let port: u16 = c[1].parse().unwrap_or(0);
            match self.ports.as_ref().and_then(|p| p.role_of(port)) {
                Some(role) => format!("<{role}>"),
                None => "<unknown-port>".to_string(),
            }
        });
        let s = re(&HEX, r"\b[0-9a-f]{8,16}\b").replace_all(&s, |c: &Captures| {
            let text = &c[0];
            match u64::from_str_radix(text, 16) {
                Ok(id) if id == self.cluster || self.name_of(id).is_some() => self.id_label(id),
                _ if text.len() >= 12 => "<unknown-id>".to_string(),
                _ => text.to_string(),
            }
        });
        // etcdctl prints some ids with `%16x`: a shorter id is padded with spaces.
        let s = re(&PAD, r" {2,}(<(id:[^>]+|cluster|unknown-id)>)").replace_all(&s, " $1");
        let s = re(&VERSION, r"\b3\.\d+\.\d+\b").replace_all(&s, "<version>");
        let s = re(&SIZE, r"\b\d+(\.\d+)? ?[kMG]?B\b").replace_all(&s, "<size>");
        let s = re(&TOOK, r"took = [0-9.]+[a-zµ]+").replace_all(&s, "took = <time>");
        // Endpoint status rows (simple `, ` or normalised table ` | `): leader and learner
        // flags stay, term and indexes go.
        let s = re(
            &RAFT,
            r"(true|false)(, | \| )(true|false)(, | \| )\d+(, | \| )\d+(, | \| )\d+",
        )
        .replace_all(&s, "$1$2$3$4<raft>$5<raft>$6<raft>");
        s.into_owned()
    }

    /// A JSON document: ids, raft numbers, sizes, versions and times masked, arrays sorted.
    fn mask_json(&self, v: &mut Value) {
        // `endpoint status -w json`: each row's header names the member of its endpoint.
        let per_endpoint =
            matches!(v, Value::Array(a) if a.iter().all(|e| e.get("Endpoint").is_some()));
        self.mask_json_in(v, per_endpoint, false);
    }

    fn mask_json_in(&self, v: &mut Value, per_endpoint: bool, in_header: bool) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    let k = k.as_str();
                    if ID_FIELDS.contains(&k) {
                        if let Some(id) = val.as_u64() {
                            *val = if k == "member_id" && in_header && !per_endpoint {
                                match self.name_of(id) {
                                    Some(_) => Value::from("<responder>"),
                                    None => Value::from("<unknown-id>"),
                                }
                            } else {
                                Value::from(self.id_label(id))
                            };
                            continue;
                        }
                    }
                    if RAFT_FIELDS.contains(&k) && val.is_number() {
                        *val = Value::from("<raft>");
                    } else if SIZE_FIELDS.contains(&k) && val.is_number() {
                        *val = Value::from("<size>");
                    } else if k == "version" && val.is_string() {
                        *val = Value::from("<version>");
                    } else if k == "took" && val.is_string() {
                        *val = Value::from("<time>");
                    } else if let Value::String(s) = val {
                        *s = self.mask_text(s);
                    } else {
                        self.mask_json_in(val, per_endpoint, k == "header");
                    }
                }
            }
            Value::Array(a) => {
                for e in a.iter_mut() {
                    self.mask_json_in(e, per_endpoint, false);
                }
                a.sort_by_cached_key(|e| e.to_string());
            }
            Value::String(s) => *s = self.mask_text(s),
            _ => {}
        }
    }

    /// One command's standard output. `rows_unordered`: the lines (or table rows) come in an
    /// order that is not part of the contract.
    fn mask_stdout(&self, out: &str, rows_unordered: bool) -> String {
        let mut lines: Vec<String> = Vec::new();
        for l in out.lines() {
            let t = l.trim();
            if (t.starts_with('{') || t.starts_with('[')) && t.len() > 1 {
                if let Ok(mut v) = serde_json::from_str::<Value>(t) {
                    self.mask_json(&mut v);
                    lines.push(v.to_string());
                    continue;
                }
            }
            let l = normalise_table_line(l);
            let l = self.mask_text(&l);
            lines.push(sort_initial_cluster(&l));
        }
        if rows_unordered {
            sort_rows(&mut lines);
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// etcdctl's standard error: client log lines reduced to their error, the rest masked.
    fn mask_stderr(&self, err: &str, rows_unordered: bool) -> String {
        let mut lines: Vec<String> = Vec::new();
        for l in err.lines() {
            let line = if l.starts_with("{\"level\":") {
                let Ok(v) = serde_json::from_str::<Value>(l) else {
                    continue;
                };
                match v.get("error").and_then(Value::as_str) {
                    Some(e) => format!("[client log] {}", self.mask_text(e)),
                    None => continue,
                }
            } else {
                self.mask_text(&normalise_table_line(l))
            };
            if lines.last() != Some(&line) {
                lines.push(line);
            }
        }
        if rows_unordered {
            lines.sort();
            lines.dedup();
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// ASCII tables: cell padding depends on the width of masked values.
fn normalise_table_line(line: &str) -> String {
    if line.starts_with('+') && line.chars().all(|c| c == '+' || c == '-') {
        return "+--+".to_string();
    }
    if line.starts_with('|') && line.ends_with('|') {
        static TIME: OnceLock<Regex> = OnceLock::new();
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| {
                let c = c.trim();
                if re(&TIME, r"^[0-9.]+(ns|µs|ms|s)$").is_match(c) {
                    "<time>".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        return format!("| {} |", cells.join(" | "));
    }
    line.to_string()
}

/// `ETCD_INITIAL_CLUSTER="a=...,b=..."` lists members in id order: sorted by name here.
fn sort_initial_cluster(line: &str) -> String {
    let Some(list) = line
        .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
        .and_then(|r| r.strip_suffix('"'))
    else {
        return line.to_string();
    };
    let mut parts: Vec<&str> = list.split(',').collect();
    parts.sort_unstable();
    format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(","))
}

/// Sorts the rows of a table (those after the header) or, without a table, all lines.
fn sort_rows(lines: &mut [String]) {
    let borders: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == "+--+").collect();
    if borders.len() >= 3 {
        lines[borders[1] + 1..borders[2]].sort();
    } else {
        lines.sort();
    }
}

// --- one run ---------------------------------------------------------------------------------

/// A cluster under test and the transcript of the session run against it.
struct Run {
    which: Impl,
    ports: Ports,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    known: Known,
    /// Raw (unmasked) bootstrap member ids by name, and the cluster id.
    raw_ids: BTreeMap<String, u64>,
    /// Whether the first `member list` after every member answered `/health` showed a member
    /// without client URLs (it served clients before its attributes were committed).
    served_before_published: bool,
    out: String,
}

/// A member as `member list -w json` shows it: id, name, whether it has client URLs.
type Listed = (u64, String, bool);

/// Parses `member list -w json` (raw): (cluster id, members).
fn parse_member_list(o: &Output) -> Option<(u64, Vec<Listed>)> {
    let v: Value = serde_json::from_str(o.stdout.trim()).ok()?;
    let cluster = v.get("header")?.get("cluster_id")?.as_u64()?;
    let members = v
        .get("members")?
        .as_array()?
        .iter()
        .filter_map(|m| {
            Some((
                m.get("ID")?.as_u64()?,
                m.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                m.get("clientURLs")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty()),
            ))
        })
        .collect();
    Some((cluster, members))
}

impl Run {
    /// Starts the bootstrap members and waits for a healthy cluster led by m0.
    fn start(which: Impl, ports: Ports) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let initial: Vec<String> = BOOT
            .iter()
            .map(|n| format!("{n}={}", ports.url(&format!("{n}-peer"))))
            .collect();
        let initial = initial.join(",");
        let nodes = BOOT
            .iter()
            .map(|n| Node::spawn(which, dir.path(), n, &ports, &initial, "new"))
            .collect();
        let mut run = Run {
            which,
            ports: ports.clone(),
            dir,
            nodes,
            known: Known {
                ports: Some(ports),
                ..Known::default()
            },
            raw_ids: BTreeMap::new(),
            served_before_published: false,
            out: String::new(),
        };
        for i in 0..BOOT.len() {
            run.wait_healthy(i);
        }
        let list = run.ctl(&run.boot_endpoints(), &["member", "list", "-w", "json"]);
        let (cluster, members) = parse_member_list(&list)
            .unwrap_or_else(|| panic!("{}: member list: {list:?}", which.label()));
        assert_eq!(members.len(), 3, "{}: {list:?}", which.label());
        run.known.cluster = cluster;
        run.raw_ids.insert("cluster".to_string(), cluster);
        // etcd serves clients only once its own name and client URLs are committed
        // (ReadyNotify), so once all members answered, all are listed with client URLs.
        run.served_before_published = members.iter().any(|m| !m.2);
        for (id, name, _) in members {
            assert!(BOOT.contains(&name.as_str()), "{}: {list:?}", which.label());
            run.raw_ids.insert(name.clone(), id);
            run.known.ids.push((id, name));
        }
        let deadline = Instant::now() + PATIENCE;
        // Until every member's attributes are committed (etcd: already the case).
        let mut published = !run.served_before_published;
        while !published {
            let list = run.ctl(&run.boot_endpoints(), &["member", "list", "-w", "json"]);
            published = parse_member_list(&list).is_some_and(|(_, ms)| ms.iter().all(|m| m.2));
            assert!(
                published || Instant::now() < deadline,
                "{}: members never published their client URLs: {list:?}",
                which.label()
            );
            if !published {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        run.lead_with("m0");
        run
    }

    fn wait_healthy(&mut self, i: usize) {
        let addr = self.ports.addr(&format!("{}-client", self.nodes[i].name));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.nodes[i].assert_running("starting");
            if is_healthy(&addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} did not become healthy; log:\n{}",
                self.which.label(),
                self.nodes[i].name,
                self.nodes[i].log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn boot_endpoints(&self) -> Vec<String> {
        BOOT.iter()
            .map(|n| self.ports.addr(&format!("{n}-client")))
            .collect()
    }

    fn id(&self, name: &str) -> u64 {
        self.known
            .ids
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("no id for {name}"))
            .0
    }

    fn hex(&self, name: &str) -> String {
        format!("{:x}", self.id(name))
    }

    /// etcdctl 3.5.1 against `endpoints`, not recorded.
    fn ctl(&self, endpoints: &[String], args: &[&str]) -> Output {
        etcdctl(Ctl::V351, &endpoints.join(","), args, b"")
    }

    /// Runs etcdctl and appends its masked result to the transcript.
    fn record(&mut self, endpoints: &[String], args: &[&str]) -> Output {
        let o = self.ctl(endpoints, args);
        self.note_output(endpoints, args, &o);
        o
    }

    fn note_output(&mut self, endpoints: &[String], args: &[&str], o: &Output) {
        let unordered = matches!(args, ["member", "list", ..] | ["endpoint", ..]);
        let eps = self.known.mask_text(&endpoints.join(","));
        let line = self.known.mask_text(&args.join(" "));
        self.out.push_str(&format!(
            "$ etcdctl --endpoints={eps} {line}\n[exit {:?}]\n",
            o.code
        ));
        self.out
            .push_str(&self.known.mask_stdout(&o.stdout, unordered));
        let err = self.known.mask_stderr(&o.stderr, unordered);
        if !err.is_empty() {
            self.out.push_str("--- stderr\n");
            self.out.push_str(&err);
        }
    }

    fn note(&mut self, text: &str) {
        self.out.push_str(&format!("# {text}\n"));
    }

    /// The leader every member in `endpoints` reports, when they all agree.
    fn agreed_leader(&self, endpoints: &[String]) -> Option<u64> {
        let o = self.ctl(endpoints, &["endpoint", "status", "-w", "json"]);
        let v: Value = serde_json::from_str(o.stdout.trim()).ok()?;
        let rows = v.as_array()?;
        if rows.len() != endpoints.len() {
            return None;
        }
        let leaders: Vec<u64> = rows
            .iter()
            .filter_map(|r| r.get("Status")?.get("leader")?.as_u64())
            .collect();
        (leaders.len() == rows.len() && leaders.iter().all(|l| *l == leaders[0]) && leaders[0] != 0)
            .then_some(leaders[0])
    }

    /// Endpoints of the members currently running.
    fn running_endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.proc.started())
            .map(|n| self.ports.addr(&format!("{}-client", n.name)))
            .collect()
    }

    /// Makes `name` the leader (not recorded) and waits until every running member knows it.
    fn lead_with(&mut self, name: &str) {
        let want = self.id(name);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let eps = self.running_endpoints();
            match self.agreed_leader(&eps) {
                Some(l) if l == want => return,
                Some(_) => {
                    let _ = self.ctl(&eps, &["move-leader", &self.hex(name)]);
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "{}: {name} did not become the leader known to all",
                self.which.label()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running member reports the same leader, `want`.
    fn settle(&mut self, want: &str) {
        let want_id = self.id(want);
        let deadline = Instant::now() + PATIENCE;
        while self.agreed_leader(&self.running_endpoints()) != Some(want_id) {
            if Instant::now() > deadline {
                self.note(&format!("members did not agree on leader {want}"));
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
}

/// Runs etcdctl (not recorded) until its standard error no longer contains `refusal` or
/// [`PATIENCE`] ran out; the last output.
fn retry_while(run: &Run, endpoints: &[String], args: &[&str], refusal: &str) -> Output {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let o = run.ctl(endpoints, args);
        if !o.stderr.contains(refusal) || Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The recorded session (see the module documentation). Starts from a healthy 3-member cluster
/// led by m0. Returns whether it ran to the end (it stops early when a member add fails).
fn session(run: &mut Run) -> bool {
    let all = run.boot_endpoints();
    let m = |r: &Run, n: &str| r.hex(n);

    // --- the bootstrap cluster -------------------------------------------------------------
    run.record(&all, &["member", "list"]);
    run.record(&all, &["member", "list", "-w", "table"]);
    run.record(&all, &["member", "list", "-w", "json"]);
    run.record(&all, &["endpoint", "status", "--cluster"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "table"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "json"]);
    run.record(&all, &["endpoint", "health", "--cluster"]);
    run.record(&all, &["endpoint", "health", "--cluster", "-w", "table"]);
    run.record(&all, &["endpoint", "health", "--cluster", "-w", "json"]);

    // --- a learner ------------------------------------------------------------------------
    let newm_peer = run.ports.url("newm-peer");
    let peer_flag = format!("--peer-urls={newm_peer}");
    // etcd refuses reconfiguration until every member has been connected for 5 seconds
    // ("etcdserver: unhealthy cluster"); not part of what is compared, so retried unrecorded.
    let add_args = ["member", "add", "newm", &peer_flag, "--learner"];
    let add = retry_while(run, &all, &add_args, "etcdserver: unhealthy cluster");
    static ADDED: OnceLock<Regex> = OnceLock::new();
    let added = re(&ADDED, r"Member +([0-9a-f]+) added to cluster");
    let newm_id = added
        .captures(&add.stdout)
        .and_then(|c| u64::from_str_radix(&c[1], 16).ok());
    if let Some(id) = newm_id {
        run.known.ids.push((id, "newm".to_string()));
    }
    run.note_output(&all, &add_args, &add);
    let spare = format!("--peer-urls={}", run.ports.url("spare-peer"));
    run.record(&all, &["member", "add", "second", &spare, "--learner"]);
    let dup = format!("--peer-urls={}", run.ports.url("m1-peer"));
    run.record(&all, &["member", "add", "dup", &dup]);
    run.record(&all, &["member", "list", "-w", "table"]);
    run.record(&all, &["member", "list", "-w", "json"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "table"]);

    let Some(_) = newm_id else {
        run.note("member add printed no id: the rest of the session is skipped");
        return false;
    };
    let newm = m(run, "newm");
    // Not started yet, so certainly not in sync with the leader.
    run.record(&all, &["member", "promote", &newm]);

    // Start it exactly as `member add` told to.
    static INITIAL: OnceLock<Regex> = OnceLock::new();
    let initial = re(&INITIAL, r#"(?m)^ETCD_INITIAL_CLUSTER="([^"]*)"$"#)
        .captures(&add.stdout)
        .map(|c| c[1].to_string());
    let Some(initial) = initial else {
        run.note("member add printed no ETCD_INITIAL_CLUSTER: the rest of the session is skipped");
        return false;
    };
    let node = Node::spawn(
        run.which,
        run.dir.path(),
        "newm",
        &run.ports,
        &initial,
        "existing",
    );
    run.nodes.push(node);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let list = run.ctl(&all, &["member", "list", "-w", "json"]);
        let started =
            parse_member_list(&list).is_some_and(|(_, ms)| ms.iter().any(|m| m.1 == "newm"));
        if started {
            break;
        }
        run.node_mut("newm")
            .expect("newm")
            .assert_running("joining as a learner");
        if Instant::now() > deadline {
            run.note("newm never showed up as started in member list");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    run.note(
        "newm started with the printed ETCD_INITIAL_CLUSTER, --initial-cluster-state existing",
    );
    run.record(&all, &["member", "list", "-w", "table"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "table"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "json"]);
    run.record(&all, &["endpoint", "health", "--cluster"]);
    run.record(&all, &["move-leader", &newm]);

    // Promote once the learner caught up (the not-in-sync refusals meanwhile are not recorded).
    let promoted = retry_while(
        run,
        &all,
        &["member", "promote", &newm],
        "can only promote a learner member which is in sync with leader",
    );
    run.note_output(&all, &["member", "promote", &newm], &promoted);
    run.record(&all, &["member", "promote", &newm]);
    let m1 = m(run, "m1");
    run.record(&all, &["member", "promote", &m1]);
    run.record(&all, &["member", "promote", "1234abcd"]);
    run.record(&all, &["member", "list"]);

    // --- leadership ------------------------------------------------------------------------
    run.record(&all, &["move-leader", &m1]);
    run.settle("m1");
    run.record(&all, &["move-leader", &m1]);
    run.record(&all, &["move-leader", "1234abcd"]);
    run.record(&all, &["move-leader", "not-hex"]);
    let m2_only = vec![run.ports.addr("m2-client")];
    let m0 = m(run, "m0");
    run.record(&m2_only, &["move-leader", &m0]);
    let m1_only = vec![run.ports.addr("m1-client")];
    run.record(&m1_only, &["move-leader", &m0]);
    run.settle("m0");
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "table"]);
    run.record(&all, &["endpoint", "status", "--cluster"]);

    // --- update and remove -----------------------------------------------------------------
    let peer2 = format!("--peer-urls={}", run.ports.url("newm-peer2"));
    run.record(&all, &["member", "update", &newm, &peer2]);
    run.record(&all, &["member", "update", "1234abcd", &peer2]);
    let taken = format!("--peer-urls={}", run.ports.url("m2-peer"));
    run.record(&all, &["member", "update", &m0, &taken]);
    run.record(&all, &["member", "list", "-w", "table"]);
    run.record(&all, &["member", "remove", &newm]);
    run.record(&all, &["member", "remove", &newm]);
    let exited = run.node_mut("newm").expect("newm").wait_exit(REMOVED_EXIT);
    match exited {
        Some(code) => run.note(&format!(
            "removed member newm exited by itself, code {code:?}"
        )),
        None => run.note("removed member newm still runs"),
    }
    run.record(&all, &["member", "list", "-w", "table"]);
    run.record(&all, &["endpoint", "status", "--cluster", "-w", "table"]);
    run.record(&all, &["endpoint", "health", "--cluster", "-w", "table"]);
    true
}

/// What one run of the session produced.
struct Transcript {
    text: String,
    /// See [`Run::raw_ids`].
    raw_ids: BTreeMap<String, u64>,
    /// See [`Run::served_before_published`].
    served_before_published: bool,
}

/// Runs the session against a fresh cluster of `which` on `ports`.
fn transcript(which: Impl, ports: Ports) -> Transcript {
    let mut run = Run::start(which, ports);
    let complete = session(&mut run);
    let out = std::mem::take(&mut run.out);
    // CAIRN_GOLDEN_DUMP=1 also keeps the members' logs.
    if std::env::var_os("CAIRN_GOLDEN_DUMP").is_some() {
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cluster-golden-logs-{}", which.label()));
        let _ = std::fs::create_dir_all(&keep);
        for n in &run.nodes {
            let _ = std::fs::copy(n.proc.log_path(), keep.join(format!("{}.log", n.name)));
        }
    }
    // The reference must run the whole session, else the comparison proves little.
    assert!(
        complete || which == Impl::Cairn,
        "{}: the session stopped early:\n{out}",
        which.label()
    );
    Transcript {
        text: out,
        raw_ids: run.raw_ids.clone(),
        served_before_published: run.served_before_published,
    }
}

/// Splits a transcript into (command, block) pairs.
fn blocks(t: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for l in t.lines() {
        if l.starts_with("$ ") || l.starts_with("# ") || v.is_empty() {
            v.push((l.to_string(), String::new()));
        }
        let last = v.last_mut().expect("block");
        last.1.push_str(l);
        last.1.push('\n');
    }
    v
}

fn compare(label: &str, reference: (&str, &str), candidate: (&str, &str)) {
    let (ref_name, ref_text) = reference;
    let (cand_name, cand_text) = candidate;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rp = dir.join(format!("cluster-golden-{label}-{ref_name}.txt"));
    let cp = dir.join(format!("cluster-golden-{label}-{cand_name}.txt"));
    if ref_text != cand_text || std::env::var_os("CAIRN_GOLDEN_DUMP").is_some() {
        let _ = std::fs::write(&rp, ref_text);
        let _ = std::fs::write(&cp, cand_text);
    }
    if ref_text == cand_text {
        return;
    }
    let (rb, cb) = (blocks(ref_text), blocks(cand_text));
    let mut report = String::new();
    for i in 0..rb.len().max(cb.len()) {
        let r = rb.get(i).map(|b| b.1.as_str()).unwrap_or("(missing)\n");
        let c = cb.get(i).map(|b| b.1.as_str()).unwrap_or("(missing)\n");
        if r != c {
            report.push_str(&format!(
                "=== step {}\n--- {ref_name}\n{r}--- {cand_name}\n{c}",
                i + 1
            ));
        }
    }
    panic!(
        "{label}: transcripts differ\n{report}\nfull transcripts: {} and {}",
        rp.display(),
        cp.display()
    );
}

// --- tests -----------------------------------------------------------------------------------

#[test]
fn normalisation_hides_only_what_it_documents() {
    let ports = Ports(vec![
        ("m0-client".to_string(), 40001),
        ("m0-peer".to_string(), 40002),
        ("newm-peer".to_string(), 40003),
    ]);
    let known = Known {
        ids: vec![
            (0x117b9266988c4966, "m0".to_string()),
            (0x9fe1427db9e954fd, "newm".to_string()),
        ],
        cluster: 0xfb5cd0b1599eebf2,
        ports: Some(ports),
    };
    // Member add: ids, ports and the initial cluster's order.
    let add = "Member 9fe1427db9e954fd added to cluster fb5cd0b1599eebf2\n\n\
               ETCD_NAME=\"newm\"\n\
               ETCD_INITIAL_CLUSTER=\"newm=http://127.0.0.1:40003,m0=http://127.0.0.1:40002\"\n";
    assert_eq!(
        known.mask_stdout(add, false),
        "Member <id:newm> added to cluster <cluster>\n\nETCD_NAME=\"newm\"\n\
         ETCD_INITIAL_CLUSTER=\"m0=http://<m0-peer>,newm=http://<newm-peer>\"\n"
    );
    // Status rows: flags, revision and names stay; raft numbers, size, version go.
    assert_eq!(
        known.mask_stdout(
            "http://127.0.0.1:40001, 117b9266988c4966, 3.5.1, 20 kB, true, false, 2, 8, 8, \n",
            true
        ),
        "http://<m0-client>, <id:m0>, <version>, <size>, true, false, <raft>, <raft>, <raft>, \n"
    );
    let json = r#"[{"Endpoint":"http://127.0.0.1:40001","Status":{"header":{"cluster_id":18112581261508668402,"member_id":1259761490123835750,"revision":1,"raft_term":2},"version":"3.5.1","dbSize":20480,"leader":1259761490123835750,"raftIndex":8,"raftTerm":2,"raftAppliedIndex":8,"dbSizeInUse":16384,"isLearner":true}}]"#;
    let known_json = Known {
        cluster: 18112581261508668402,
        ..known.clone()
    };
    assert_eq!(
        known_json.mask_stdout(json, true),
        "[{\"Endpoint\":\"http://<m0-client>\",\"Status\":{\"dbSize\":\"<size>\",\"dbSizeInUse\":\"<size>\",\
         \"header\":{\"cluster_id\":\"<cluster>\",\"member_id\":\"<id:m0>\",\"raft_term\":\"<raft>\",\"revision\":1},\
         \"isLearner\":true,\"leader\":\"<id:m0>\",\"raftAppliedIndex\":\"<raft>\",\"raftIndex\":\"<raft>\",\
         \"raftTerm\":\"<raft>\",\"version\":\"<version>\"}}]\n"
    );
    // Outside endpoint status the responding member is any endpoint.
    assert_eq!(
        known.mask_stdout(
            r#"{"header":{"cluster_id":1,"member_id":1259761490123835750},"members":[{"ID":11284238812144142050,"name":"m9"}]}"#,
            true
        ),
        "{\"header\":{\"cluster_id\":\"<unknown-id>\",\"member_id\":\"<responder>\"},\"members\":[{\"ID\":\"<unknown-id>\",\"name\":\"m9\"}]}\n"
    );
    // Errors keep their text and gRPC code; the log line around them goes.
    let err = "{\"level\":\"warn\",\"ts\":\"x\",\"msg\":\"retrying of unary invoker failed\",\
               \"error\":\"rpc error: code = NotFound desc = etcdserver: member not found\"}\n\
               Error: etcdserver: member not found\n";
    assert_eq!(
        known.mask_stderr(err, false),
        "[client log] rpc error: code = NotFound desc = etcdserver: member not found\n\
         Error: etcdserver: member not found\n"
    );
    // Ids padded to 16 columns.
    assert_eq!(
        known.mask_text("Member  17b9266988c4966 removed from cluster   b5cd0b1599eebf2"),
        "Member <unknown-id> removed from cluster <unknown-id>"
    );
    // Short hex words and unknown long ids.
    assert_eq!(
        known.mask_text("add 1234abcd deadbeefdeadbeef"),
        "add 1234abcd <unknown-id>"
    );
    // Table rows sorted, header kept in place; times masked.
    let mut rows: Vec<String> = [
        "+--+",
        "| ENDPOINT | HEALTH | TOOK | ERROR |",
        "+--+",
        "| b | true | <time> |  |",
        "| a | true | <time> |  |",
        "+--+",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sort_rows(&mut rows);
    assert_eq!(rows[1], "| ENDPOINT | HEALTH | TOOK | ERROR |");
    assert_eq!(rows[3], "| a | true | <time> |  |");
    assert_eq!(
        normalise_table_line("| http://x |   true |  5.952769ms |       |"),
        "| http://x | true | <time> |  |"
    );
}

/// Two etcd clusters on different ports give the same normalised transcript: the
/// normalisation hides run-to-run differences and nothing in the session is left to chance.
#[test]
fn etcd_cluster_transcripts_agree() {
    let a = transcript(Impl::Etcd351, Ports::pick());
    let b = transcript(Impl::Etcd351, Ports::pick());
    compare(
        "etcd-vs-etcd",
        ("etcd-3.5.1-a", &a.text),
        ("etcd-3.5.1-b", &b.text),
    );
    assert!(!a.served_before_published && !b.served_before_published);
}

#[test]
fn cairn_cluster_matches_etcd() {
    // Same ports and token: the bootstrap member ids and the cluster id must be equal too.
    let ports = Ports::pick();
    let a = transcript(Impl::Etcd351, ports.clone());
    let b = transcript(Impl::Cairn, ports);
    if b.served_before_published {
        // A known gap, reported to the server's owner; a race, so not compared (the session
        // starts once every member published its attributes).
        eprintln!(
            "known gap, accepted: a Cairn member answers clients before its name and client URLs \
             are committed (etcd waits for that before serving)"
        );
    }
    compare("etcd-vs-cairn", ("etcd-3.5.1", &a.text), ("cairn", &b.text));
    assert_eq!(
        a.raw_ids, b.raw_ids,
        "member/cluster ids derived differently from etcd"
    );
}
