//! cairn-index (under construction).
