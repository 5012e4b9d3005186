//! `cairnutl`: offline tools for Cairn data, with `etcdutl`'s commands and flags.
//!
//! - `cairnutl snapshot restore FILE [--data-dir DIR] [--name N] [--initial-cluster C]
//!   [--initial-cluster-token T] [--initial-advertise-peer-urls U] [--skip-hash-check]`
//! - `cairnutl snapshot status FILE [-w simple|json|table|fields]`
//! - `cairnutl defrag --data-dir DIR` (the member must be stopped)
//! - `cairnutl version`
//!
//! Flags follow pflag conventions (`--flag=value`, `--flag value`, `-w json`), read by the
//! server's tokenizer ([`config::CommandLine`]); a flag etcdutl has but cairnutl does not
//! support yet is an error naming it.

mod defrag;
mod restore;
mod status;

use std::path::PathBuf;

use cairn_server::config::{self, Arity, CommandLine, Syntax};

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

/// etcdutl's one-letter flags.
const SHORTHANDS: &[(char, &str)] = &[('w', "write-out"), ('h', "help")];

/// Positional arguments and `(flag, value)` pairs.
type ParsedArgs = (Vec<String>, Vec<(String, String)>);

/// pflag-style parsing with the server's tokenizer: returns positional arguments and
/// `(flag, value)` pairs. `bools` (and `help`) are the flags that take no value unless
/// written `--flag=value`; any other name takes one, and the caller rejects the names it
/// does not know once the whole command line has been read.
fn parse_flags(args: &[String], bools: &[&str]) -> Result<ParsedArgs, String> {
    let arity = |name: &str| {
        Some(if name == "help" || bools.contains(&name) {
            Arity::Bool
        } else {
            Arity::Value
        })
    };
    let mut cl = CommandLine::new(
        args,
        Syntax::Pflag {
            shorthands: SHORTHANDS,
        },
        arity,
    );
    let flags = cl
        .by_ref()
        .map(|f| f.map(|f| (f.name, f.value)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((cl.positional().to_vec(), flags))
}

fn parse_bool(flag: &str, v: &str) -> bool {
    config::parse_bool(v).unwrap_or_else(|_| {
        fail(format!("invalid argument {v:?} for \"--{flag}\" flag: strconv.ParseBool: parsing {v:?}: invalid syntax"))
    })
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
            "snapshot save is an online command: use etcdctl snapshot save against a running member",
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
