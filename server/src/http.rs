//! HTTP endpoints on the client port: `/health`, `/version` (being written).
