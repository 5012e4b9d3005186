//! Background tasks that drive the member through the same proposals clients make: lease
//! expiry and checkpoints (`lease_expiry`), automatic compaction (`compactor`).

pub(crate) mod compactor;
pub(crate) mod lease_expiry;
