//! `cairnutl`: offline tools for Cairn data, with `etcdutl`'s commands and flags.
//!
//! - `cairnutl snapshot restore FILE [--data-dir DIR] [--name N] [--initial-cluster C]
//!   [--initial-cluster-token T] [--initial-advertise-peer-urls U] [--skip-hash-check]`
//! - `cairnutl snapshot status FILE [-w simple|json|table|fields]`
//! - `cairnutl defrag --data-dir DIR` (the member must be stopped)
//! - `cairnutl version`
//!
//! Flags follow pflag conventions (`--flag=value`, `--flag value`, `-w json`); a flag etcdutl
//! has but cairnutl does not support yet is an error naming it.

mod defrag;
mod restore;
mod status;

use std::path::PathBuf;

const USAGE: &str = "\
Usage:
  cairnutl snapshot restore <filename> [flags]
      --data-dir string                      Path to the output data directory (default \"<name>.etcd\")
      --name string                          Human-readable name for this member (default \"default\")
      --initial-cluster string               Initial cluster configuration for restore bootstrap (default \"default=http://localhost:2380\")
      --initial-cluster-token string         Initial cluster token for the etcd cluster during restore bootstrap (default \"etcd-cluster\")
      --initial-advertise-peer-urls string   List of this member's peer URLs to advertise to the rest of the cluster (default \"http://localhost:2380\")
      --skip-hash-check                      Ignore snapshot integrity hash value (required if copied from data directory)
  cairnutl snapshot status <filename> [-w simple|json|table|fields]
  cairnutl defrag --data-dir <data dir>
  cairnutl version
";

/// Flags etcdutl's restore has that cairnutl does not support yet.
const UNSUPPORTED: &[&str] = &["wal-dir", "bump-revision", "mark-compacted"];

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("Error: {msg}");
    std::process::exit(1);
}

/// Positional arguments and `(flag, value)` pairs.
type ParsedArgs = (Vec<String>, Vec<(String, String)>);

/// pflag-style parsing: returns positional arguments and `(flag, value)` pairs. `bools` are
/// the flags that take no value unless written `--flag=value`.
fn parse_flags(args: &[String], bools: &[&str]) -> Result<ParsedArgs, String> {
    let mut pos = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            pos.extend(args[i..].iter().cloned());
            break;
        }
        let name_val = if let Some(rest) = a.strip_prefix("--") {
            rest
        } else if let Some(rest) = a.strip_prefix('-').filter(|r| !r.is_empty()) {
            // Shorthands: only -w.
            match rest {
                "w" => "write-out",
                r if r.starts_with("w=") => {
                    flags.push(("write-out".to_string(), r[2..].to_string()));
                    continue;
                }
                "h" => "help",
                _ => return Err(format!("unknown shorthand flag: {:?} in {a}", &rest[..1])),
            }
        } else {
            pos.push(a.clone());
            continue;
        };
        let (name, inline) = match name_val.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (name_val.to_string(), None),
        };
        let value = if bools.contains(&name.as_str()) || name == "help" {
            inline.unwrap_or_else(|| "true".to_string())
        } else {
            match inline {
                Some(v) => v,
                None if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                None => return Err(format!("flag needs an argument: --{name}")),
            }
        };
        flags.push((name, value));
    }
    Ok((pos, flags))
}

fn parse_bool(flag: &str, v: &str) -> bool {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
        _ => fail(format!("invalid argument {v:?} for \"--{flag}\" flag: strconv.ParseBool: parsing {v:?}: invalid syntax")),
    }
}

fn snapshot_restore(args: &[String]) {
    let (pos, flags) =
        parse_flags(args, &["skip-hash-check", "mark-compacted"]).unwrap_or_else(|e| fail(e));
    let mut o = restore::RestoreOptions::default();
    for (name, value) in flags {
        match name.as_str() {
            "data-dir" => o.data_dir = Some(PathBuf::from(value)),
            "name" => o.name = Some(value),
            "initial-cluster" => o.initial_cluster = Some(value),
            "initial-cluster-token" => o.initial_cluster_token = Some(value),
            "initial-advertise-peer-urls" => o.initial_advertise_peer_urls = Some(value),
            "skip-hash-check" => o.skip_hash_check = parse_bool(&name, &value),
            // A memory-map sizing hint: nothing to do for Cairn's engine, which grows its map.
            "initial-memory-map-size" => {}
            "help" => {
                print!("{USAGE}");
                return;
            }
            n if UNSUPPORTED.contains(&n) => {
                fail(format!("flag --{n} is not supported yet by cairnutl"))
            }
            n => fail(format!("unknown flag: --{n}")),
        }
    }
    if pos.len() != 1 {
        fail("snapshot restore requires exactly one argument");
    }
    o.snapshot = PathBuf::from(&pos[0]);
    match restore::restore(&o) {
        Ok(dir) => println!(
            "restored snapshot {} into {}",
            o.snapshot.display(),
            dir.display()
        ),
        Err(e) => fail(e),
    }
}

fn snapshot_status(args: &[String]) {
    let (pos, flags) = parse_flags(args, &[]).unwrap_or_else(|e| fail(e));
    let mut format = "simple".to_string();
    for (name, value) in flags {
        match name.as_str() {
            "write-out" => format = value,
            "help" => {
                print!("{USAGE}");
                return;
            }
            n => fail(format!("unknown flag: --{n}")),
        }
    }
    if pos.len() != 1 {
        fail("snapshot status requires exactly one argument");
    }
    let st = status::status(std::path::Path::new(&pos[0])).unwrap_or_else(|e| fail(e));
    match status::render(&st, &format) {
        Ok(s) => print!("{s}"),
        Err(e) => fail(e),
    }
}

fn defrag_cmd(args: &[String]) {
    let (pos, flags) = parse_flags(args, &[]).unwrap_or_else(|e| fail(e));
    let mut dir = None;
    for (name, value) in flags {
        match name.as_str() {
            "data-dir" => dir = Some(PathBuf::from(value)),
            "help" => {
                print!("{USAGE}");
                return;
            }
            n => fail(format!("unknown flag: --{n}")),
        }
    }
    if !pos.is_empty() {
        fail(format!("unexpected argument {:?}", pos[0]));
    }
    let dir = dir.unwrap_or_else(|| fail("--data-dir is required"));
    match defrag::defrag(&dir) {
        Ok((before, after)) => {
            println!("finished defragmenting directory: {}", dir.display());
            eprintln!("backend file: {before} bytes before, {after} bytes after");
        }
        Err(e) => fail(e),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["snapshot", "restore", ..] => snapshot_restore(&args[2..]),
        ["snapshot", "status", ..] => snapshot_status(&args[2..]),
        ["snapshot", "save", ..] => fail(
            "snapshot save is an online command: use etcdctl (or cairnctl) snapshot save against a running member",
        ),
        ["defrag", ..] => defrag_cmd(&args[1..]),
        ["version"] | ["--version"] => {
            println!("cairnutl version: {}", env!("CARGO_PKG_VERSION"));
            println!("API version: 3.5");
        }
        [] | ["help"] | ["--help"] | ["-h"] | ["snapshot"] => print!("{USAGE}"),
        [other, ..] => {
            eprintln!("Error: unknown command {other:?} for \"cairnutl\"");
            eprint!("{USAGE}");
            std::process::exit(1);
        }
    }
}
