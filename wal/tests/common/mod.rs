//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use cairn_wal::{BackendChoice, BackendKind, Entry, Error, Options, Record, Replay, Wal};

/// A small segment size, so tests roll over often.
pub const SMALL_SEGMENT_BYTES: u64 = 8192;

pub fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        kind: (index % 3) as u8,
        data: Bytes::copy_from_slice(data),
    }
}

/// Payload that differs per index and term, of a size that varies with the index.
pub fn payload(index: u64, term: u64) -> Vec<u8> {
    let len = (index * 37 + term) % 301;
    (0..len).map(|i| (i ^ index ^ (term << 3)) as u8).collect()
}

pub fn numbered(index: u64, term: u64) -> Entry {
    entry(index, term, &payload(index, term))
}

pub fn options(backend: BackendChoice, segment_size: u64) -> Options {
    Options {
        segment_size,
        backend,
    }
}

pub fn open(dir: &Path, backend: BackendChoice, segment_size: u64) -> (Wal, Replay) {
    match Wal::open(dir, options(backend, segment_size)) {
        Ok(opened) => opened,
        Err(error) => panic!("open of {} failed: {error}", dir.display()),
    }
}

/// The backends to run the suite on: always pwritev; io_uring when this machine has it.
/// When it does not, this asserts instead that `Auto` falls back to pwritev with a reason
/// and that an explicit `IoUring` is the typed `IoUringUnavailable` error, so the io_uring
/// tests never pass silently. Set `CAIRN_WAL_REQUIRE_IO_URING=1` to make its absence fail.
pub fn backends() -> Vec<BackendChoice> {
    let dir = tempfile::tempdir().unwrap();
    match Wal::open(
        dir.path().join("probe"),
        options(BackendChoice::IoUring, 8192),
    ) {
        Ok((wal, _)) => {
            assert_eq!(wal.backend(), BackendKind::IoUring);
            wal.close().unwrap();
            let (auto, _) = open(&dir.path().join("auto"), BackendChoice::Auto, 8192);
            assert_eq!(
                auto.backend(),
                BackendKind::IoUring,
                "Auto must prefer io_uring"
            );
            assert!(auto.fallback_reason().is_none());
            vec![BackendChoice::Pwritev, BackendChoice::IoUring]
        }
        Err(Error::IoUringUnavailable {
            source,
            likely_cause,
        }) => {
            assert!(
                std::env::var_os("CAIRN_WAL_REQUIRE_IO_URING").is_none(),
                "io_uring required: {source}"
            );
            eprintln!("io_uring unavailable ({source}: {likely_cause}); checking the fallback");
            let (auto, _) = open(&dir.path().join("auto"), BackendChoice::Auto, 8192);
            assert_eq!(auto.backend(), BackendKind::Pwritev);
            assert!(auto
                .fallback_reason()
                .is_some_and(|r| r.contains("io_uring")));
            vec![BackendChoice::Pwritev]
        }
        Err(other) => panic!("unexpected error opening with io_uring: {other}"),
    }
}

pub fn indexes(replay: &Replay) -> Vec<u64> {
    replay.entries.iter().map(|e| e.index).collect()
}

pub fn entries(records: &[Record]) -> Vec<Entry> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Entry(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The only `.wal` file names in `dir`, sorted.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}
