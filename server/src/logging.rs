//! etcd-shaped logs: `--logger zap`, `--log-format`, `--log-outputs`, `--log-level`,
//! `--enable-log-rotation`.
//!
//! A `tracing_subscriber` fmt layer with [`EtcdFormat`] as its event formatter: each event
//! becomes one line shaped like zap's encoders in etcd (`client/pkg/logutil/zap.go`): keys
//! `level` (lowercase), `ts` (`2006-01-02T15:04:05.000Z`), `caller` (`dir/file.rs:line`),
//! `msg`, then the event's fields (numbers and booleans as JSON numbers and booleans, the
//! rest as strings). The fmt layer formats a line into its buffer and hands it to
//! [`Outputs`] with one `write_all`; each output gets the whole line with one write.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat, LogRotation};

/// Installs the global subscriber for `cfg`'s log flags. `RUST_LOG`, when set and valid,
/// takes precedence over `--log-level` (for developers). Fails, naming the flag, when an
/// output cannot be opened.
pub fn init(cfg: &Config) -> Result<(), String> {
    let outputs = Outputs::open(&cfg.log_outputs, cfg.log_rotation.as_ref())?;
    let color = cfg.log_format == LogFormat::Console && outputs.all_terminals();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log_level.as_filter()));
    let layer = tracing_subscriber::fmt::layer()
        .event_format(EtcdFormat {
            format: cfg.log_format,
            color,
        })
        .with_writer(outputs);
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}

/// The event formatter: zap's JSON or console encoder as etcd configures them.
#[derive(Clone, Copy, Debug)]
pub struct EtcdFormat {
    /// JSON lines or console (tab-separated) lines.
    pub format: LogFormat,
    /// Colour the level (console format on a terminal only).
    pub color: bool,
}

impl<S, N> FormatEvent<S, N> for EtcdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields {
            out: String::new(),
            msg: String::new(),
            console: self.format == LogFormat::Console,
        };
        event.record(&mut fields);
        let level = level_name(meta.level());
        let ts = timestamp(time::OffsetDateTime::now_utc());
        let caller = caller(meta.file(), meta.line(), meta.target());
        let mut line = String::with_capacity(96 + fields.out.len() + fields.msg.len());
        match self.format {
            LogFormat::Json => {
                line.push_str("{\"level\":\"");
                line.push_str(level);
                line.push_str("\",\"ts\":\"");
                line.push_str(&ts);
                line.push_str("\",\"caller\":");
                json_string(&mut line, &caller);
                line.push_str(",\"msg\":");
                json_string(&mut line, &fields.msg);
                line.push_str(&fields.out);
                line.push('}');
            }
            LogFormat::Console => {
                line.push_str(&ts);
                line.push('\t');
                if self.color {
                    let _ = write!(line, "\x1b[{}m{level}\x1b[0m", level_color(meta.level()));
                } else {
                    line.push_str(level);
                }
                line.push('\t');
                line.push_str(&caller);
                line.push('\t');
                // zap's console encoder writes the message as is; one event is one line.
                for c in fields.msg.chars() {
                    match c {
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        c => line.push(c),
                    }
                }
                if !fields.out.is_empty() {
                    line.push_str("\t{");
                    // Fields were written as `, "k": v`; drop the first separator.
                    line.push_str(&fields.out[2..]);
                    line.push('}');
                }
            }
        }
        line.push('\n');
        writer.write_str(&line)
    }
}

/// zap's lowercase level names (`trace` has no zap level: it is `debug`).
fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::TRACE | Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// zap's `LowercaseColorLevelEncoder` colours.
fn level_color(l: &Level) -> u8 {
    match *l {
        Level::TRACE | Level::DEBUG => 35,
        Level::INFO => 34,
        Level::WARN => 33,
        Level::ERROR => 31,
    }
}

/// zap's ISO8601 time in UTC, milliseconds: `2026-12-06T01:02:03.456Z`.
fn timestamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// zap's `ShortCallerEncoder`: the file's directory and name, and the line.
fn caller(file: Option<&str>, line: Option<u32>, target: &str) -> String {
    let Some(file) = file else {
        return target.to_string();
    };
    let mut parts = file.rsplitn(3, ['/', '\\']);
    let name = parts.next().unwrap_or(file);
    let short = match parts.next() {
        Some(dir) => format!("{dir}/{name}"),
        None => name.to_string(),
    };
    match line {
        Some(l) => format!("{short}:{l}"),
        None => short,
    }
}

/// Appends `s` as a JSON string (quotes, backslashes and control characters escaped).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Collects an event's fields: `message` becomes `msg`, the others `, "name": value`.
struct Fields {
    out: String,
    msg: String,
    /// zap's console encoder separates keys and values with `": "`.
    console: bool,
}

impl Fields {
    fn key(&mut self, field: &Field) {
        self.out.push(',');
        if self.console {
            self.out.push(' ');
        }
        json_string(&mut self.out, field.name());
        self.out.push(':');
        if self.console {
            self.out.push(' ');
        }
    }
    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
            return;
        }
        self.key(field);
        json_string(&mut self.out, value);
    }
    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        let _ = self.out.write_fmt(value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            // JSON has no NaN or infinities; zap writes them as strings.
            self.string(field, &format!("{value}"));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }
}

/// The `--log-outputs` sinks. Cloning shares them.
#[derive(Clone)]
pub struct Outputs(Arc<Vec<Sink>>);

/// One output.
pub enum Sink {
    Stderr,
    Stdout,
    File(Mutex<FileSink>),
}

impl Outputs {
    /// Opens every output (`default` and `stderr` are standard error, `stdout` standard
    /// output, anything else a file opened for appending). An output that cannot be opened
    /// fails, naming `--log-outputs`.
    pub fn open(outputs: &[String], rotation: Option<&LogRotation>) -> Result<Outputs, String> {
        let mut sinks = Vec::new();
        for o in outputs {
            sinks.push(match o.as_str() {
                "default" | "stderr" => Sink::Stderr,
                "stdout" => Sink::Stdout,
                path => {
                    let max_bytes = rotation.map(|r| {
                        let mb = if r.max_size_mb == 0 {
                            100
                        } else {
                            r.max_size_mb
                        };
                        mb.saturating_mul(1024 * 1024)
                    });
                    let sink = FileSink::open(Path::new(path), max_bytes, rotation.cloned())
                        .map_err(|e| format!("--log-outputs: couldn't open sink {path:?}: {e}"))?;
                    Sink::File(Mutex::new(sink))
                }
            });
        }
        Ok(Outputs(Arc::new(sinks)))
    }

    fn all_terminals(&self) -> bool {
        use std::io::IsTerminal;
        !self.0.is_empty()
            && self.0.iter().all(|s| match s {
                Sink::Stderr => io::stderr().is_terminal(),
                Sink::Stdout => io::stdout().is_terminal(),
                Sink::File(_) => false,
            })
    }

    /// Writes one whole line to every output (errors are dropped: there is nowhere to
    /// report them).
    pub fn write_line(&self, line: &[u8]) {
        for s in self.0.iter() {
            let _ = match s {
                Sink::Stderr => io::stderr().write_all(line),
                Sink::Stdout => {
                    let mut out = io::stdout().lock();
                    out.write_all(line).and_then(|()| out.flush())
                }
                Sink::File(f) => f.lock().write_line(line),
            };
        }
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter(self)
    }
}

/// What the fmt layer writes a formatted line to (once per event).
pub struct LineWriter<'a>(&'a Outputs);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf);
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_line(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log file, rotated by size as lumberjack does when `--enable-log-rotation` is on: the
/// full file is renamed `<name>-<UTC time>.<ext>` and a new one started; rotated files
/// beyond `maxbackups` or older than `maxage` days are removed.
pub struct FileSink {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: Option<u64>,
    rotation: Option<LogRotation>,
}

impl FileSink {
    /// Opens (creating, appending) `path`; rotates past `max_bytes` when given.
    pub fn open(
        path: &Path,
        max_bytes: Option<u64>,
        rotation: Option<LogRotation>,
    ) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            rotation,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(max) = self.max_bytes {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn name_parts(&self) -> (String, String) {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name, String::new()),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let (stem, ext) = self.name_parts();
        let t = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        );
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Two rotations within a millisecond (tiny sizes): number the later ones after
        // every backup of that millisecond, so that names keep sorting oldest first.
        let same_ms = self
            .backups(dir, &stem, &ext)
            .into_iter()
            .filter(|(k, _)| k.0 == stamp)
            .map(|(k, _)| k.1 + 1)
            .max();
        let backup = match same_ms {
            None => dir.join(format!("{stem}-{stamp}{ext}")),
            Some(n) => dir.join(format!("{stem}-{stamp}.{n}{ext}")),
        };
        std::fs::rename(&self.path, &backup)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        self.prune(dir, &stem, &ext);
        Ok(())
    }

    /// The rotated files of this log, oldest first, with their (time, counter) keys.
    fn backups(&self, dir: &Path, stem: &str, ext: &str) -> Vec<((String, u64), PathBuf)> {
        let prefix = format!("{stem}-");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut backups: Vec<((String, u64), PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if !(name.starts_with(&prefix)
                    && name.ends_with(ext)
                    && name.len() > prefix.len() + ext.len()
                    && e.path() != self.path)
                {
                    return None;
                }
                let mid = &name[prefix.len()..name.len() - ext.len()];
                // `<time>` or `<time>.<counter>`; the time itself has one '.'.
                let key = match mid.rsplit_once('.') {
                    Some((stamp, n)) if stamp.contains('.') => {
                        (stamp.to_string(), n.parse::<u64>().ok()?)
                    }
                    _ => (mid.to_string(), 0),
                };
                Some((key, e.path()))
            })
            .collect();
        // The UTC time in the names, then the counter, sorts them oldest first.
        backups.sort();
        backups
    }

    /// Removes rotated files beyond `maxbackups` (oldest first) or older than `maxage`.
    fn prune(&self, dir: &Path, stem: &str, ext: &str) {
        let Some(r) = &self.rotation else { return };
        let mut backups = self.backups(dir, stem, ext);
        let mut remove = Vec::new();
        if r.max_backups > 0 && backups.len() as u64 > r.max_backups {
            let extra = backups.len() - r.max_backups as usize;
            remove.extend(backups.drain(..extra).map(|(_, p)| p));
        }
        if r.max_age_days > 0 {
            let max_age = std::time::Duration::from_secs(r.max_age_days * 86_400);
            for (_, p) in &backups {
                let old = std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > max_age);
                if old {
                    remove.push(p.clone());
                }
            }
        }
        for p in remove {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests;
