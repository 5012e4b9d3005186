//! The multi-version store: revision keys, the backend with its write buffer, the
//! revision store (index + backend), and etcd's hashes.

pub(crate) mod backend;
pub(crate) mod revkey;
pub(crate) mod store;

pub(crate) use store::{Store, WriteTxn};
