//! Many tasks and threads append at once: the log holds every acknowledged record exactly
//! once, each append's records together and in order, and in a total order consistent
//! with acknowledgements (an append acknowledged before another began comes first).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_wal::{read_records, Entry, Record, Wal};
use common::*;

/// One append call: its records' tags and when (on a shared logical clock) it was issued
/// and acknowledged.
struct Call {
    tags: Vec<Bytes>,
    issued: u64,
    acknowledged: u64,
}

fn call_records(appender: u64, call: u64) -> Vec<Record> {
    (0..1 + (appender + call) % 3)
        .map(|part| {
            let data = Bytes::from(format!(
                "{appender}/{call}/{part}/{}",
                "x".repeat((call % 50) as usize)
            ));
            Record::Entry(Entry {
                index: 1,
                term: 1,
                kind: 0,
                data,
            })
        })
        .collect()
}

fn tags(records: &[Record]) -> Vec<Bytes> {
    records
        .iter()
        .map(|r| match r {
            Record::Entry(e) => e.data.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn check_log(dir: &std::path::Path, calls: &[Call]) {
    let logged = tags(&read_records(dir).unwrap());
    let mut position: HashMap<Bytes, usize> = HashMap::new();
    for (at, tag) in logged.iter().enumerate() {
        assert!(
            position.insert(tag.clone(), at).is_none(),
            "record {tag:?} logged twice"
        );
    }
    let expected: usize = calls.iter().map(|c| c.tags.len()).sum();
    assert_eq!(
        logged.len(),
        expected,
        "every acknowledged record exactly once, nothing else"
    );
    // Each call's records are contiguous and in order.
    let mut starts: Vec<(usize, &Call)> = Vec::new();
    for call in calls {
        let first = position[&call.tags[0]];
        for (offset, tag) in call.tags.iter().enumerate() {
            assert_eq!(
                position[tag],
                first + offset,
                "records of one append split or reordered"
            );
        }
        starts.push((first, call));
    }
    // Order consistent with acknowledgements: walking the log backwards, no later call may
    // have been acknowledged before an earlier call was issued.
    starts.sort_by_key(|(first, _)| *first);
    let mut earliest_acknowledged_after = u64::MAX;
    for (_, call) in starts.iter().rev() {
        assert!(
            earliest_acknowledged_after > call.issued,
            "a call acknowledged before another was issued is logged after it"
        );
        earliest_acknowledged_after = earliest_acknowledged_after.min(call.acknowledged);
    }
}

#[test]
fn threads_and_tasks_append_concurrently() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(dir.path(), backend, 64 * 1024);
        let wal = Arc::new(wal);
        let clock = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        // Blocking appenders on threads.
        let threads: Vec<_> = (0..8u64)
            .map(|appender| {
                let (wal, clock, calls) =
                    (Arc::clone(&wal), Arc::clone(&clock), Arc::clone(&calls));
                std::thread::spawn(move || {
                    for call in 0..60 {
                        let records = call_records(appender, call);
                        let tags = tags(&records);
                        let issued = clock.fetch_add(1, Ordering::SeqCst);
                        wal.append_blocking(records).unwrap();
                        let acknowledged = clock.fetch_add(1, Ordering::SeqCst);
                        calls.lock().unwrap().push(Call {
                            tags,
                            issued,
                            acknowledged,
                        });
                    }
                })
            })
            .collect();
        // Async appenders on a runtime, at the same time.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (100..164u64)
                .map(|appender| {
                    let (wal, clock, calls) =
                        (Arc::clone(&wal), Arc::clone(&clock), Arc::clone(&calls));
                    tokio::spawn(async move {
                        for call in 0..12 {
                            let records = call_records(appender, call);
                            let tags = tags(&records);
                            let issued = clock.fetch_add(1, Ordering::SeqCst);
                            wal.append(records).await.unwrap();
                            let acknowledged = clock.fetch_add(1, Ordering::SeqCst);
                            calls.lock().unwrap().push(Call {
                                tags,
                                issued,
                                acknowledged,
                            });
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        for thread in threads {
            thread.join().unwrap();
        }
        let stats = wal.stats();
        eprintln!("{backend:?}: {stats:?}");
        assert!(stats.segments_created > 0, "the test should cross segments");
        wal.close().unwrap();
        let calls = std::mem::take(&mut *calls.lock().unwrap());
        assert_eq!(calls.len(), 8 * 60 + 64 * 12);
        // Open works (raft rules applied) and the raw log satisfies every property.
        let (_, replay) = open(dir.path(), backend, 64 * 1024);
        assert_eq!(replay.entries.len(), 1);
        check_log(dir.path(), &calls);
    }
}

#[test]
fn wal_is_send_and_sync_and_its_future_is_send() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send + 'static>(_: &T) {}
    assert_send_sync::<Wal>();
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(
        dir.path(),
        cairn_wal::BackendChoice::Pwritev,
        SMALL_SEGMENT_BYTES,
    );
    let future = wal.append(vec![]);
    assert_send(&future);
    drop(future);
    wal.close().unwrap();
}
