//! A watcher that never reads: opens one watch on every key and then stops polling the
//! stream, so the server sees a client that stalls from its first event on. Used to check
//! that a stalled watcher leaves apply throughput and server memory alone:
//!
//!     cargo run --release -p cairn-perf --example stalled_watch -- 127.0.0.1:2379 60
//!
//! (endpoint, seconds to hold the stream open).

use std::time::Duration;

use cairn_perf::proto::etcdserverpb::{
    watch_client::WatchClient, watch_request::RequestUnion, WatchCreateRequest, WatchRequest,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "127.0.0.1:2379".to_string());
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let mut client = WatchClient::connect(format!("http://{endpoint}")).await?;
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: vec![0].into(),
            range_end: vec![0].into(),
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(create).await?;
    let mut responses = client
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    // Read only the "created" answer, then never poll again.
    let created = responses.message().await?;
    eprintln!("stalled_watch: created={:?}", created.map(|r| r.created));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    drop(tx);
    Ok(())
}
