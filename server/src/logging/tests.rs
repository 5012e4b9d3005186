use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// Collects written lines, recording how many writes each took.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Vec<u8>>>>);

struct CaptureWriter(Capture);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 .0.lock().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.clone())
    }
}

fn capture(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
    let cap = Capture::default();
    let sub = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .event_format(EtcdFormat {
                format,
                color: false,
            })
            .with_writer(cap.clone()),
    );
    tracing::subscriber::with_default(sub, f);
    let writes = cap.0.lock().clone();
    writes
        .into_iter()
        .map(|w| String::from_utf8(w).expect("utf-8"))
        .collect()
}

fn json(line: &str) -> serde_json::Map<String, serde_json::Value> {
    assert!(line.ends_with('\n'), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
    match serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")) {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn json_lines_have_etcds_keys_in_order() {
    let lines = capture(LogFormat::Json, || {
        tracing::info!(count = 3u64, "data-dir" = "/x", ok = true, "starting");
    });
    assert_eq!(lines.len(), 1, "one write per event: {lines:?}");
    let l = &lines[0];
    assert!(
        l.starts_with("{\"level\":\"info\",\"ts\":\""),
        "key order: {l}"
    );
    let m = json(l);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    // serde_json's Map is sorted unless preserve_order: check the set.
    for k in ["level", "ts", "caller", "msg", "count", "data-dir", "ok"] {
        assert!(keys.contains(&k), "{k} missing in {l}");
    }
    assert_eq!(m["msg"], "starting");
    assert_eq!(m["count"], serde_json::json!(3));
    assert_eq!(m["data-dir"], "/x");
    assert_eq!(m["ok"], serde_json::json!(true));
    let caller = m["caller"].as_str().unwrap();
    assert!(caller.starts_with("logging/tests.rs:"), "{caller}");
    let ts = m["ts"].as_str().unwrap();
    let re = regex_lite(ts);
    assert!(re, "ts {ts}");
}

/// `2026-12-06T01:02:03.456Z`.
fn regex_lite(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && ts.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

#[test]
fn numbers_are_numbers_and_the_rest_strings() {
    let lines = capture(LogFormat::Json, || {
        let id = 0xbdae9bbc11dd390du64;
        tracing::warn!(
            term = 2u64,
            delta = -5i64,
            ratio = 0.5f64,
            nan = f64::NAN,
            shown = %id,
            debugged = ?"q",
            "level check"
        );
    });
    let m = json(&lines[0]);
    assert_eq!(m["level"], "warn");
    assert_eq!(m["term"], serde_json::json!(2));
    assert_eq!(m["delta"], serde_json::json!(-5));
    assert_eq!(m["ratio"], serde_json::json!(0.5));
    assert_eq!(m["nan"], "NaN");
    assert_eq!(m["shown"], serde_json::json!(id_str()));
    assert_eq!(m["debugged"], "\"q\"");
}

fn id_str() -> String {
    0xbdae9bbc11dd390du64.to_string()
}

#[test]
fn quotes_newlines_and_control_characters_are_escaped() {
    let nasty = "a \"quoted\" \\ back\nnew\rret\ttab \u{1} \u{1f} \u{7f} é";
    let lines = capture(LogFormat::Json, || {
        tracing::error!(field = nasty, "msg {nasty}");
    });
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert!(!l[..l.len() - 1].contains('\n'), "{l:?}");
    assert!(!l.contains('\u{1}') && !l.contains('\u{7f}'), "{l:?}");
    let m = json(l);
    assert_eq!(m["field"], nasty);
    assert_eq!(m["msg"], format!("msg {nasty}"));
    assert_eq!(m["level"], "error");
}

#[test]
fn console_format_is_tab_separated() {
    let lines = capture(LogFormat::Console, || {
        tracing::info!(n = 7u64, who = "x\"y", "hello\nworld");
        tracing::debug!("plain");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    // No fields: no fields column.
    let plain: Vec<&str> = lines[1].trim_end_matches('\n').split('\t').collect();
    assert_eq!(plain.len(), 4, "{plain:?}");
    assert_eq!((plain[1], plain[3]), ("debug", "plain"));
    let cols: Vec<&str> = lines[0].trim_end_matches('\n').split('\t').collect();
    assert_eq!(cols.len(), 5, "{cols:?}");
    assert!(regex_lite(cols[0]), "{cols:?}");
    assert_eq!(cols[1], "info");
    assert!(cols[2].starts_with("logging/tests.rs:"), "{cols:?}");
    assert_eq!(cols[3], "hello\\nworld");
    let fields: serde_json::Value = serde_json::from_str(cols[4]).unwrap();
    assert_eq!(fields, serde_json::json!({"n": 7, "who": "x\"y"}));
}

#[test]
fn caller_is_short() {
    assert_eq!(
        caller(Some("server/src/raft/node.rs"), Some(12), "t"),
        "raft/node.rs:12"
    );
    assert_eq!(caller(Some("main.rs"), Some(1), "t"), "main.rs:1");
    assert_eq!(caller(None, None, "cairn::x"), "cairn::x");
}

#[test]
fn every_output_gets_each_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    let outs = Outputs::open(&[a.display().to_string(), b.display().to_string()], None).unwrap();
    outs.write_line(b"one\n");
    outs.write_line(b"two\n");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "one\ntwo\n");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "one\ntwo\n");
    let e = Outputs::open(
        &[dir.path().join("no/such/dir.log").display().to_string()],
        None,
    )
    .err()
    .expect("a missing directory fails");
    assert!(e.starts_with("--log-outputs: couldn't open sink"), "{e}");
}

#[test]
fn file_rotates_by_size_and_keeps_maxbackups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.log");
    let rotation = LogRotation {
        max_size_mb: 1,
        max_age_days: 0,
        max_backups: 2,
    };
    let mut f = FileSink::open(&path, Some(10), Some(rotation)).unwrap();
    for i in 0..5 {
        f.write_line(format!("line{i}\n").as_bytes()).unwrap();
    }
    // 6 bytes a line, 10 bytes a file: every line starts a new file.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "line4\n");
    let mut backups: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "etcd.log")
        .collect();
    backups.sort();
    assert_eq!(backups.len(), 2, "{backups:?}");
    for n in &backups {
        assert!(n.starts_with("etcd-") && n.ends_with(".log"), "{n}");
    }
    let kept: Vec<String> = backups
        .iter()
        .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
        .collect();
    assert_eq!(kept, vec!["line2\n", "line3\n"]);
}
