//! A failed write or fdatasync poisons the log: the callers of that batch and every later
//! call get `Error::Poisoned`, nobody is told "durable" for records that were not synced,
//! and after a crash that loses everything unsynced, every acknowledged record is there.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_wal::{
    read_records, BackendChoice, Entry, Error, FaultPlan, FaultyIo, PwritevIo, Record, UringIo,
    Wal, WalIo,
};
use common::*;

const SEGMENT_BYTES: u64 = 1 << 20;

fn inner_backend(backend: BackendChoice) -> Box<dyn WalIo> {
    match backend {
        BackendChoice::IoUring => Box::new(UringIo::new().unwrap()),
        _ => Box::new(PwritevIo),
    }
}

/// Entries identified by their data; all at index 1 so concurrent order never makes a gap.
fn tagged(writer: u64, n: u64) -> Entry {
    Entry {
        index: 1,
        term: 1,
        kind: 0,
        data: Bytes::from(format!("{writer}/{n}")),
    }
}

enum Fault {
    Write,
    Sync,
}

/// Runs 6 threads appending while `fault` strikes; returns (acknowledged, refused) tags.
fn run_until_poisoned(wal: &Arc<Wal>, plan: &FaultPlan, fault: Fault) -> (Vec<Bytes>, Vec<Bytes>) {
    for n in 0..10 {
        wal.append_blocking(vec![Record::Entry(tagged(99, n))])
            .unwrap();
    }
    match fault {
        Fault::Write => plan.fail_write_after(3),
        Fault::Sync => plan.fail_sync_after(3),
    }
    let acknowledged = Arc::new(Mutex::new(
        (0..10).map(|n| tagged(99, n).data).collect::<Vec<_>>(),
    ));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..6)
        .map(|writer| {
            let (wal, acknowledged, refused) = (
                Arc::clone(wal),
                Arc::clone(&acknowledged),
                Arc::clone(&refused),
            );
            std::thread::spawn(move || {
                for n in 0..40 {
                    let e = tagged(writer, n);
                    match wal.append_blocking(vec![Record::Entry(e.clone())]) {
                        Ok(()) => acknowledged.lock().unwrap().push(e.data),
                        Err(Error::Poisoned(_)) => refused.lock().unwrap().push(e.data),
                        Err(other) => panic!("unexpected error {other}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    (acknowledged, refused)
}

fn assert_poisoned_everywhere(wal: &Wal) {
    let poisoned = |result: Result<(), Error>| matches!(result, Err(Error::Poisoned(_)));
    assert!(poisoned(
        wal.append_blocking(vec![Record::Entry(tagged(7, 7))])
    ));
    assert!(poisoned(wal.sync_blocking()));
    assert!(matches!(wal.release_before(1), Err(Error::Poisoned(_))));
    let message = wal.sync_blocking().unwrap_err().to_string();
    assert!(
        message.contains("injected"),
        "the poison names its cause: {message}"
    );
    assert!(poisoned(wal.close()));
}

/// Reopens with a healthy backend and checks every acknowledged record is in the log.
fn assert_acknowledged_survive(dir: &Path, acknowledged: &[Bytes]) -> HashSet<Bytes> {
    let (wal, _) = open(dir, BackendChoice::Pwritev, SEGMENT_BYTES);
    wal.close().unwrap();
    let found: HashSet<Bytes> = entries(&read_records(dir).unwrap())
        .into_iter()
        .map(|e| e.data)
        .collect();
    for data in acknowledged {
        assert!(found.contains(data), "acknowledged record {data:?} lost");
    }
    found
}

#[test]
fn failed_fdatasync_poisons_and_only_synced_records_were_acknowledged() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let io = Box::new(FaultyIo::new(inner_backend(backend), plan.clone()));
        let (wal, _) = Wal::open_with_io(dir.path(), options(backend, SEGMENT_BYTES), io).unwrap();
        let wal = Arc::new(wal);
        let (acknowledged, refused) = run_until_poisoned(&wal, &plan, Fault::Sync);
        assert!(
            !refused.is_empty(),
            "the failed batch's callers must be refused"
        );
        assert_poisoned_everywhere(&wal);
        drop(wal);
        // Crash: everything after the last successful fdatasync is lost.
        let name = segment_names(dir.path()).remove(0);
        let path = dir.path().join(&name);
        let mut image = fs::read(&path).unwrap();
        let durable = plan.durable_end() as usize;
        assert!(durable > 64);
        image[durable..].fill(0);
        fs::write(&path, &image).unwrap();
        let found = assert_acknowledged_survive(dir.path(), &acknowledged);
        assert_eq!(
            found.len(),
            acknowledged.len(),
            "the log holds exactly what was acknowledged"
        );
    }
}

#[test]
fn failed_write_poisons_and_the_torn_batch_is_cut_at_reopen() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let io = Box::new(FaultyIo::new(inner_backend(backend), plan.clone()));
        let (wal, _) = Wal::open_with_io(dir.path(), options(backend, SEGMENT_BYTES), io).unwrap();
        let wal = Arc::new(wal);
        let (acknowledged, refused) = run_until_poisoned(&wal, &plan, Fault::Write);
        assert!(!refused.is_empty());
        assert_poisoned_everywhere(&wal);
        drop(wal);
        // Half of the failed batch reached the file; reopening cuts what is incomplete and
        // keeps every acknowledged record. Records of the failed batch that happen to be
        // complete may stay: they were never acknowledged, so raft re-proposes or drops them.
        let found = assert_acknowledged_survive(dir.path(), &acknowledged);
        let refused: HashSet<Bytes> = refused.into_iter().collect();
        assert!(found
            .iter()
            .all(|data| acknowledged.contains(data) || refused.contains(data)));
    }
}

#[test]
fn poison_is_not_triggered_by_a_healthy_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let io = Box::new(FaultyIo::new(Box::new(PwritevIo), plan.clone()));
    let (wal, _) = Wal::open_with_io(
        dir.path(),
        options(BackendChoice::Pwritev, SEGMENT_BYTES),
        io,
    )
    .unwrap();
    for n in 0..20 {
        wal.append_blocking(vec![Record::Entry(tagged(1, n))])
            .unwrap();
    }
    assert!(plan.calls() >= 20);
    wal.close().unwrap();
}
