//! cairn-wal (under construction).
