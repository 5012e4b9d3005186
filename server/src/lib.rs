//! cairn-server (under construction).
