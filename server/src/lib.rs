//! cairn-server: an etcd v3 member.
//!
//! Module map (see ../shared/DESIGN.md):
//! - `config`: etcd's flags, `ETCD_*` environment variables and `--config-file` YAML.
//! - `http`: `/health`, `/version` (and later `/livez`, `/readyz`, `/metrics`) on the client port.

pub mod config;
pub mod http;
