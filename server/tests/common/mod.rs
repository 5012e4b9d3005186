//! Shared helpers for the integration tests: one in-process member per test, on a free
//! 127.0.0.1 port, with its data in a temporary directory.
#![allow(dead_code)]

use cairn_server::config::Url;
use cairn_server::{Config, Server};
use etcd_client::Client;
use tempfile::TempDir;

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: TempDir,
    pub endpoint: String,
    pub opts: Config,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = Config::for_test(dir.path().join("data"));
        f(&mut opts);
        let server = Server::start(opts.clone()).await.expect("server starts");
        let endpoint = format!("http://{}", server.client_addrs()[0]);
        opts.listen_client_urls = server
            .client_addrs()
            .iter()
            .copied()
            .map(Url::http)
            .collect();
        TestServer {
            server: Some(server),
            dir,
            endpoint,
            opts,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("client connects")
    }

    /// Stops the member cleanly and starts it again on the same data and port.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let server = Server::start(self.opts.clone())
            .await
            .expect("server restarts");
        self.endpoint = format!("http://{}", server.client_addrs()[0]);
        self.server = Some(server);
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

/// The gRPC code and message of a failed call.
pub fn status_of(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}
