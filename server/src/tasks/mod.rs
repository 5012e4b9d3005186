//! Background tasks that drive the member through the same proposals clients make: lease
//! expiry and checkpoints (`lease_expiry`), automatic compaction (`compactor`); and the
//! start-up comparison of this member's data with its peers' (`corrupt`).

pub(crate) mod compactor;
pub(crate) mod corrupt;
pub(crate) mod lease_expiry;
