//! Automatic compaction in both modes (bounded polling, no timing assertions).

mod common;

use std::time::Duration;

use cairn_server::AutoCompaction;
use common::TestServer;

async fn wait_for_compaction(c: &mut etcd_client::Client, at_least: i64) -> i64 {
    for _ in 0..200 {
        let h = c.hash_kv(0).await.unwrap();
        if h.compact_version() >= at_least {
            return h.compact_version();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no compaction reached revision {at_least}");
}

#[tokio::test]
async fn revision_mode_keeps_the_last_n_revisions() {
    let ts = TestServer::start_with(|o| {
        o.auto_compaction = AutoCompaction::Revision(5);
        o.auto_compaction_check_interval = Duration::from_millis(50);
    })
    .await;
    let mut c = ts.client().await;
    for i in 0..20 {
        c.put("k", format!("{i}"), None).await.unwrap(); // revs 2..=21
    }
    let compacted = wait_for_compaction(&mut c, 16).await;
    assert!(
        compacted <= 21 - 5,
        "keeps at least 5 revisions, compacted at {compacted}"
    );
    ts.stop().await;
}

#[tokio::test]
async fn periodic_mode_compacts_old_history() {
    let ts = TestServer::start_with(|o| {
        o.auto_compaction = AutoCompaction::Periodic(Duration::from_millis(500));
    })
    .await;
    let mut c = ts.client().await;
    for i in 0..10 {
        c.put("k", format!("{i}"), None).await.unwrap(); // revs 2..=11
    }
    // Once the retention has passed, the revision sampled then gets compacted.
    let compacted = wait_for_compaction(&mut c, 11).await;
    assert!(compacted <= 11);
    ts.stop().await;
}
