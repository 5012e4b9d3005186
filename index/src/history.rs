//! One key's revision history: its generations, with etcd's `keyIndex` semantics.
//!
//! A *generation* is one life of the key: it starts with the put that creates the key and
//! ends with the tombstone that deletes it (the tombstone is the generation's last
//! revision). etcd stores an empty generation after every tombstone; here that trailing
//! empty generation is implied by `live == false`, so every stored generation is non-empty.
//!
//! Invariants:
//! - every generation in `gens` has at least one revision; revisions strictly increase
//!   across the whole history;
//! - every generation but the last ends with its tombstone; the last one ends with a
//!   tombstone exactly when `live` is false;
//! - `gens` is empty only for a history that compaction emptied (then `removed` is set and
//!   the skiplist entry is unlinked) or that was never written.

use std::collections::HashSet;

use smallvec::{smallvec, SmallVec};

use crate::{Error, KeyAt, Revision};

/// One life of a key, from its creating put to its tombstone (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Generation {
    /// Revision of the creating put (kept when compaction drops that revision).
    pub(crate) created: Revision,
    /// Number of changes in this generation, tombstone included; compaction does not
    /// lower it, so the version at any kept revision stays exact.
    pub(crate) ver: i64,
    /// The kept revisions, ascending.
    pub(crate) revs: SmallVec<[Revision; 1]>,
}

impl Generation {
    fn new(created: Revision, ver: i64, first: Revision) -> Self {
        Generation {
            created,
            ver,
            revs: smallvec![first],
        }
    }

    fn last(&self) -> Revision {
        // Stored generations are never empty.
        self.revs[self.revs.len() - 1]
    }

    /// Index of the last revision whose main revision is at or below `at`.
    fn last_at_or_below(&self, at: i64) -> Option<usize> {
        self.revs.partition_point(|r| r.main <= at).checked_sub(1)
    }
}

/// The history of one key.
#[derive(Debug, Default)]
pub(crate) struct KeyHistory {
    pub(crate) gens: SmallVec<[Generation; 1]>,
    /// The last generation is open (the key currently exists).
    pub(crate) live: bool,
    /// Compaction emptied this history and unlinked it from the skiplist; a writer that
    /// finds this flag must look the key up again.
    pub(crate) removed: bool,
    /// Copy of the newest revision (the last one of the last generation), so that reads at
    /// the head, the common case, need not follow the revision list's heap pointer.
    newest: Revision,
}

/// Where a compaction at some revision cuts a history (etcd's `doCompact`).
struct CompactPoint {
    /// First generation that survives; `gens.len()` means none does.
    gen: usize,
    /// In that generation, the latest revision at or below the compaction revision.
    rev: Option<usize>,
}

impl KeyHistory {
    pub(crate) fn is_empty(&self) -> bool {
        self.gens.is_empty()
    }

    /// The latest revision written to this key (etcd's `modified`).
    pub(crate) fn latest(&self) -> Option<Revision> {
        (!self.gens.is_empty()).then_some(self.newest)
    }

    fn check_newer(&self, rev: Revision) -> Result<(), Error> {
        match self.latest() {
            Some(latest) if rev <= latest => Err(Error::StaleRevision { given: rev, latest }),
            _ => Ok(()),
        }
    }

    /// Appends a put, creating a new generation if the key is not live.
    pub(crate) fn put(&mut self, rev: Revision) -> Result<(), Error> {
        self.check_newer(rev)?;
        self.push(rev);
        Ok(())
    }

    fn push(&mut self, rev: Revision) {
        self.newest = rev;
        match self.gens.last_mut() {
            Some(g) if self.live => {
                g.revs.push(rev);
                g.ver += 1;
            }
            _ => {
                self.gens.push(Generation::new(rev, 1, rev));
                self.live = true;
            }
        }
    }

    /// Appends a tombstone ending the live generation.
    pub(crate) fn tombstone(&mut self, rev: Revision) -> Result<(), Error> {
        if !self.live {
            return Err(Error::RevisionNotFound);
        }
        self.check_newer(rev)?;
        self.push(rev);
        self.live = false;
        Ok(())
    }

    /// Rebuilds a history from the newest stored value of a key whose older revisions
    /// were compacted away (etcd's `restore`).
    pub(crate) fn restored(created: Revision, modified: Revision, ver: i64) -> Self {
        KeyHistory {
            gens: smallvec![Generation::new(created, ver, modified)],
            live: true,
            removed: false,
            newest: modified,
        }
    }

    /// Rebuilds a history whose only known revision is a tombstone (etcd's
    /// `restoreTombstone`: creation unknown, so `created` is zero and the version 1).
    pub(crate) fn restored_tombstone(rev: Revision) -> Self {
        KeyHistory {
            gens: smallvec![Generation::new(Revision::default(), 1, rev)],
            live: false,
            removed: false,
            newest: rev,
        }
    }

    /// The key's state at main revision `at` (etcd's `keyIndex.get`).
    pub(crate) fn get(&self, at: i64) -> Option<KeyAt> {
        let n = self.gens.len();
        let newest = self.gens.last()?;
        if at >= self.newest.main {
            // At or after the newest change: the key is what that change left.
            return self.live.then_some(KeyAt {
                modified: self.newest,
                created: newest.created,
                version: newest.ver,
            });
        }
        for (i, g) in self.gens.iter().enumerate().rev() {
            let open = i + 1 == n && self.live;
            // A generation that ended at or below `at` means the key was deleted there.
            if !open && g.last().main <= at {
                return None;
            }
            if g.revs[0].main <= at {
                let idx = g.last_at_or_below(at)?;
                let newer = (g.revs.len() - 1 - idx) as i64;
                return Some(KeyAt {
                    modified: g.revs[idx],
                    created: g.created,
                    version: g.ver - newer,
                });
            }
        }
        None
    }

    /// Appends to `out` every revision with main revision at or above `rev`; of several
    /// revisions sharing a main revision only the one with the largest sub is kept
    /// (etcd's `keyIndex.since`).
    pub(crate) fn since(&self, rev: i64, out: &mut Vec<Revision>) {
        let first = self.gens.partition_point(|g| g.last().main < rev);
        let start = out.len();
        for g in &self.gens[first..] {
            let from = g.revs.partition_point(|r| r.main < rev);
            for &r in &g.revs[from..] {
                let n = out.len();
                if n > start && out[n - 1].main == r.main {
                    out[n - 1] = r;
                } else {
                    out.push(r);
                }
            }
        }
    }

    fn compact_point(&self, at: i64) -> CompactPoint {
        // etcd's generation list has one more (empty) generation when the key is dead.
        let etcd_last = if self.live {
            self.gens.len() - 1
        } else {
            self.gens.len()
        };
        let gen = self.gens[..etcd_last]
            .iter()
            .position(|g| g.last().main >= at)
            .unwrap_or(etcd_last);
        let rev = self.gens.get(gen).and_then(|g| g.last_at_or_below(at));
        CompactPoint { gen, rev }
    }

    /// Drops what a compaction at `at` makes unreachable and records in `keep` the
    /// revision of this key that must stay in the backend (etcd's `keyIndex.compact`):
    /// generations whose tombstone is below `at` go away; in the first remaining one, the
    /// latest revision at or below `at` stays and older ones go. Afterwards the history may
    /// be empty: the caller then removes the key.
    pub(crate) fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) {
        if self.gens.is_empty() {
            return;
        }
        let p = self.compact_point(at);
        if let Some(idx) = p.rev {
            let g = &mut self.gens[p.gen];
            keep.insert(g.revs[idx]);
            if idx > 0 {
                g.revs.drain(..idx);
                g.revs.shrink_to_fit();
            }
        }
        if p.gen > 0 {
            self.gens.drain(..p.gen);
            if self.gens.is_empty() {
                self.live = false;
            }
        }
    }

    /// Records the revision a compaction at `at` would keep, except a tombstone sitting
    /// exactly at `at` (etcd's `keyIndex.keep`, used for the KV hash).
    pub(crate) fn keep(&self, at: i64, keep: &mut HashSet<Revision>) {
        if self.gens.is_empty() {
            return;
        }
        let p = self.compact_point(at);
        if let Some(idx) = p.rev {
            let g = &self.gens[p.gen];
            let closed = p.gen + 1 < self.gens.len() || !self.live;
            let is_tombstone = closed && idx + 1 == g.revs.len();
            if !is_tombstone {
                keep.insert(g.revs[idx]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn revs(h: &KeyHistory) -> Vec<Vec<i64>> {
        h.gens
            .iter()
            .map(|g| g.revs.iter().map(|r| r.main).collect())
            .collect()
    }

    /// put 1, put 2, delete 3, put 4, delete 5 — the history used throughout etcd's docs.
    fn sample() -> KeyHistory {
        let mut h = KeyHistory::default();
        h.put(r(1)).unwrap();
        h.put(r(2)).unwrap();
        h.tombstone(r(3)).unwrap();
        h.put(r(4)).unwrap();
        h.tombstone(r(5)).unwrap();
        h
    }

    #[test]
    fn builds_generations() {
        let h = sample();
        assert_eq!(revs(&h), vec![vec![1, 2, 3], vec![4, 5]]);
        assert!(!h.live);
        assert_eq!(h.gens[0].ver, 3);
        assert_eq!(h.gens[1].created, r(4));
    }

    #[test]
    fn get_walks_generations() {
        let h = sample();
        assert_eq!(h.get(0), None);
        assert_eq!(
            h.get(1),
            Some(KeyAt {
                modified: r(1),
                created: r(1),
                version: 1
            })
        );
        assert_eq!(
            h.get(2),
            Some(KeyAt {
                modified: r(2),
                created: r(1),
                version: 2
            })
        );
        assert_eq!(h.get(3), None);
        assert_eq!(
            h.get(4),
            Some(KeyAt {
                modified: r(4),
                created: r(4),
                version: 1
            })
        );
        assert_eq!(h.get(5), None);
        assert_eq!(h.get(100), None);
    }

    #[test]
    fn stale_and_dead_writes_are_refused() {
        let mut h = sample();
        assert_eq!(h.tombstone(r(6)), Err(Error::RevisionNotFound));
        assert_eq!(
            h.put(r(5)),
            Err(Error::StaleRevision {
                given: r(5),
                latest: r(5)
            })
        );
        assert_eq!(revs(&h), vec![vec![1, 2, 3], vec![4, 5]]);
        h.put(r(6)).unwrap();
        assert!(h.live);
    }

    #[test]
    fn compaction_steps() {
        let mut h = sample();
        let mut keep = HashSet::new();
        h.compact(2, &mut keep);
        assert_eq!(revs(&h), vec![vec![2, 3], vec![4, 5]]);
        assert_eq!(keep, HashSet::from([r(2)]));
        keep.clear();
        h.compact(4, &mut keep);
        assert_eq!(revs(&h), vec![vec![4, 5]]);
        assert_eq!(keep, HashSet::from([r(4)]));
        keep.clear();
        h.compact(5, &mut keep);
        assert_eq!(revs(&h), vec![vec![5]]);
        assert_eq!(keep, HashSet::from([r(5)]));
        keep.clear();
        h.compact(6, &mut keep);
        assert!(h.is_empty());
        assert!(keep.is_empty());
    }

    #[test]
    fn keep_skips_tombstone_at_revision() {
        let h = sample();
        let mut keep = HashSet::new();
        h.keep(5, &mut keep);
        assert!(keep.is_empty());
        h.keep(3, &mut keep);
        assert!(keep.is_empty());
        h.keep(4, &mut keep);
        assert_eq!(keep, HashSet::from([r(4)]));
    }

    #[test]
    fn since_dedups_sub_revisions() {
        let mut h = KeyHistory::default();
        h.put(Revision::new(2, 0)).unwrap();
        h.put(Revision::new(2, 1)).unwrap();
        h.tombstone(Revision::new(3, 0)).unwrap();
        h.put(Revision::new(4, 2)).unwrap();
        let mut out = vec![Revision::new(1, 0)];
        h.since(2, &mut out);
        assert_eq!(
            out,
            vec![
                Revision::new(1, 0),
                Revision::new(2, 1),
                r(3),
                Revision::new(4, 2)
            ]
        );
    }
}
