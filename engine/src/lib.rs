//! cairn-engine (under construction).
