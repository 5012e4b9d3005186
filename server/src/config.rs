//! etcd's flags, `ETCD_*` environment variables and `--config-file` YAML (being written).
