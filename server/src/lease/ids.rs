//! Server-chosen lease ids, unique across the cluster in the layout of etcd's request id
//! generator (`idutil`):
//!
//! ```text
//! | 2 bytes                 | 5 bytes                        | 1 byte  |
//! | low 16 bits of member id | unix time in ms at start (low 40 bits) | counter |
//! ```
//!
//! The low 6 bytes are one counter that starts at the start-up time in milliseconds
//! shifted left by 8 and is incremented per id, so ids of one member never repeat unless
//! it issues more than 256 ids per millisecond for longer than it has been down; two
//! members collide only if their member ids agree in the low 15 bits (the top bit is
//! masked: lease ids are positive int63) and their counters meet. A collision is not
//! fatal either way: the grant is refused with `lease already exists` and the service
//! picks another id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const COUNTER_BITS: u32 = 8;
const TIME_BITS: u32 = 40;
const SUFFIX_BITS: u32 = COUNTER_BITS + TIME_BITS;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

/// Generator of lease ids for one member.
pub(crate) struct LeaseIds {
    prefix: u64,
    suffix: AtomicU64,
}

impl LeaseIds {
    /// A generator for member `member_id`, starting from the current time.
    pub(crate) fn new(member_id: u64) -> LeaseIds {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::starting_at(member_id, ms)
    }

    /// A generator for member `member_id` as if started at `unix_ms`.
    pub(crate) fn starting_at(member_id: u64, unix_ms: u64) -> LeaseIds {
        LeaseIds {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((unix_ms & ((1 << TIME_BITS) - 1)) << COUNTER_BITS),
        }
    }

    /// The next id: a positive int63, never 0.
    pub(crate) fn next(&self) -> i64 {
        loop {
            let suffix = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            let id = (self.prefix | (suffix & SUFFIX_MASK)) & (u64::MAX >> 1);
            if id != 0 {
                return id as i64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn layout_is_member_prefix_time_and_counter() {
        let g = LeaseIds::starting_at(0xdead_beef_0000_1234, 0x12_3456_789a);
        let id = g.next() as u64;
        assert_eq!(id >> 48, 0x1234, "low 16 bits of the member id on top");
        assert_eq!(
            (id >> 8) & ((1 << 40) - 1),
            0x12_3456_789a,
            "start time in ms"
        );
        assert_eq!(id & 0xff, 1, "counter");
        assert_eq!(g.next() as u64, id + 1);
    }

    #[test]
    fn ids_are_positive_and_distinct_even_across_the_counter_byte() {
        let g = LeaseIds::starting_at(0xffff, 5);
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let id = g.next();
            assert!(id > 0, "positive int63: {id:#x}");
            assert!(seen.insert(id), "repeated {id:#x}");
        }
    }

    #[test]
    fn two_members_started_together_do_not_collide() {
        let a = LeaseIds::starting_at(0x8e9e_05c5_2164_694d, 1_700_000_000_000);
        let b = LeaseIds::starting_at(0x91bc_3c39_8fb3_c146, 1_700_000_000_000);
        let ours: HashSet<i64> = (0..1000).map(|_| a.next()).collect();
        assert!((0..1000).all(|_| !ours.contains(&b.next())));
    }

    #[test]
    fn zero_is_never_issued() {
        // Member prefix 0 and a suffix about to wrap to 0.
        let g = LeaseIds {
            prefix: 0,
            suffix: AtomicU64::new(SUFFIX_MASK),
        };
        assert_ne!(g.next(), 0);
    }
}
