//! The etcd gRPC services, one module each. They check requests, propose writes through
//! raft (or read the store directly), and fill response headers.

pub(crate) mod cluster;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod maintenance;
pub(crate) mod watch;

use tonic::{Request, Status};

use crate::core::Core;
use crate::error::Error;

/// Honours the `hasleader` metadata (clientv3 `WithRequireLeader`).
pub(crate) fn check_leader<T>(core: &Core, req: &Request<T>) -> Result<(), Status> {
    if let Some(v) = req.metadata().get("hasleader") {
        if v.as_bytes() == b"true" && !core.has_leader() {
            return Err(Error::NoLeader.into());
        }
    }
    Ok(())
}
