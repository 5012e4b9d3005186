//! `cairnutl snapshot status`: what `etcdutl snapshot status` reports of a backend file —
//! a CRC-32C over every bucket name, key and value, the highest revision in the `key`
//! bucket, the number of keys in all buckets and the file size — after a consistency check.

use std::path::Path;

use cairn_engine::{Db, Options};
use cairn_server::schema::KEY;

/// The report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// Runs the engine's consistency walk over `db`; every problem found, in etcdutl's words.
pub fn integrity_check(db: &Db) -> Result<(), String> {
    let errors = db.check();
    if errors.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    Err(format!(
        "snapshot file integrity check failed. {} errors found.\n{}",
        list.len(),
        list.join("\n")
    ))
}

/// Reads a backend file (a snapshot without its SHA-256 trailer, or a member's `db`).
/// The file is opened read-only.
pub fn status(path: &Path) -> Result<SnapshotStatus, String> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(format!("stat {}: {e}", path.display()));
    }
    let db = Db::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    integrity_check(&db)?;
    let tx = db
        .begin_read()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut st = SnapshotStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: tx.size(),
    };
    let names: Vec<Vec<u8>> = tx.bucket_names().map(|n| n.to_vec()).collect();
    for name in names {
        let b = tx.bucket(&name).ok_or_else(|| {
            format!(
                "cannot get hash of bucket {}",
                String::from_utf8_lossy(&name)
            )
        })?;
        st.hash = crc32c::crc32c_append(st.hash, &name);
        let is_key = name == KEY;
        let mut c = b.cursor();
        let mut next = c.first();
        while let Some((k, v)) = next {
            st.hash = crc32c::crc32c_append(st.hash, k);
            // A nested bucket's entry has no value for bbolt's ForEach (etcd has none, but
            // a generic bbolt file may): `get` tells them apart.
            if b.get(k).is_some() {
                st.hash = crc32c::crc32c_append(st.hash, v);
            }
            if is_key && k.len() >= 8 {
                st.revision = i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            }
            st.total_key += 1;
            next = c.next();
        }
    }
    Ok(st)
}

/// go-humanize's `Bytes` (SI units), as etcdutl prints sizes.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// Formats the report like `etcdutl snapshot status -w <format>`.
pub fn render(st: &SnapshotStatus, format: &str) -> Result<String, String> {
    Ok(match format {
        "simple" => format!(
            "{:x}, {}, {}, {}\n",
            st.hash,
            st.revision,
            st.total_key,
            humanize_bytes(st.total_size)
        ),
        "json" => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
        "fields" => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
        "table" => {
            let header = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
            let row = [
                format!("{:x}", st.hash),
                st.revision.to_string(),
                st.total_key.to_string(),
                humanize_bytes(st.total_size),
            ];
            let widths: Vec<usize> = header
                .iter()
                .zip(&row)
                .map(|(h, r)| h.len().max(r.len()) + 2)
                .collect();
            let border: String = widths
                .iter()
                .map(|w| format!("+{}", "-".repeat(*w)))
                .collect::<String>()
                + "+\n";
            // Headers centred, values right-aligned, as etcdutl's table writer does.
            let header_line: String = header
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("|{:^w$}", c, w = *w))
                .collect::<String>()
                + "|\n";
            let row_line: String = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("| {:>w$} ", c, w = *w - 2))
                .collect::<String>()
                + "|\n";
            format!("{border}{header_line}{border}{row_line}{border}")
        }
        other => {
            return Err(format!(
                "unknown output format {other:?} (simple, json, fields, table)"
            ))
        }
    })
}
