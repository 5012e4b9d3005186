//! Free-page sets.
//!
//! [`SpanFreelist`] (the one the engine uses) keeps free pages as maximal contiguous
//! spans indexed three ways: span length → starts, start → length, last page → start.
//! Allocating `n` contiguous pages takes an exact-length span in O(1) or splits the
//! smallest longer span (a `BTreeSet` of the distinct lengths present, O(log #lengths));
//! freeing merges with both neighbours in O(1).
//!
//! [`ArrayFreelist`] is the classic sorted-array freelist with a linear scan on allocate;
//! it exists as the baseline for the benchmarks.
//!
//! Pending pages (freed by a commit while older readers may still see them) are tracked
//! by the engine outside these sets; only reusable pages live here.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::format::Pgid;

/// Hasher for page ids and lengths: one multiply (Fibonacci hashing). Keys are trusted
/// integers, so no DoS-resistant hashing is needed.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The product's high bits are the well-mixed ones; hashbrown indexes buckets with
        // the low bits, so move them down.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A set of free pages that can hand out contiguous runs.
pub trait Freelist: Default + Send {
    /// Take `n >= 1` contiguous free pages; returns the first page id.
    fn allocate(&mut self, n: u64) -> Option<Pgid>;
    /// Add the `n` pages starting at `start` (which must not already be free).
    fn free(&mut self, start: Pgid, n: u64);
    /// Number of free pages.
    fn free_count(&self) -> u64;
    /// Maximal free spans `(start, len)`, sorted by start.
    fn spans(&self) -> Vec<(Pgid, u64)>;
    /// Free page ids in ascending order.
    fn ids(&self) -> Vec<Pgid> {
        let mut v = Vec::with_capacity(self.free_count() as usize);
        for (s, n) in self.spans() {
            v.extend(s..s + n);
        }
        v
    }
    /// Build from a list of page ids (any order, duplicates ignored).
    fn from_ids(ids: &[Pgid]) -> Self {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut f = Self::default();
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut j = i + 1;
            while j < sorted.len() && sorted[j] == sorted[j - 1] + 1 {
                j += 1;
            }
            f.free(start, (j - i) as u64);
            i = j;
        }
        f
    }
}

/// Span-indexed freelist (see the module docs).
#[derive(Default, Debug, Clone)]
pub struct SpanFreelist {
    /// start → (length, position of `start` in `by_len[length]`).
    by_start: IdMap<Pgid, (u64, usize)>,
    /// last page of a span → its start.
    by_end: IdMap<Pgid, Pgid>,
    /// length → starts of spans with that length.
    by_len: IdMap<u64, Vec<Pgid>>,
    /// Distinct lengths present (non-empty `by_len` entries).
    lens: BTreeSet<u64>,
    count: u64,
}

impl SpanFreelist {
    fn insert_span(&mut self, start: Pgid, len: u64) {
        let starts = self.by_len.entry(len).or_default();
        if starts.is_empty() {
            self.lens.insert(len);
        }
        starts.push(start);
        let pos = starts.len() - 1;
        self.by_start.insert(start, (len, pos));
        self.by_end.insert(start + len - 1, start);
        self.count += len;
    }

    /// Remove the span starting at `start`; returns its length.
    fn remove_span(&mut self, start: Pgid) -> Option<u64> {
        let (len, pos) = self.by_start.remove(&start)?;
        self.by_end.remove(&(start + len - 1));
        let starts = self.by_len.get_mut(&len)?;
        // The indexes agree unless a caller freed overlapping spans (a corrupt file);
        // stay consistent rather than panic.
        let pos = if starts.get(pos) == Some(&start) {
            pos
        } else {
            starts.iter().position(|&s| s == start)?
        };
        starts.swap_remove(pos);
        if let Some(&moved) = starts.get(pos) {
            if let Some(e) = self.by_start.get_mut(&moved) {
                e.1 = pos;
            }
        }
        if starts.is_empty() {
            self.lens.remove(&len);
        }
        self.count = self.count.saturating_sub(len);
        Some(len)
    }
}

impl Freelist for SpanFreelist {
    fn allocate(&mut self, n: u64) -> Option<Pgid> {
        if n == 0 {
            return None;
        }
        if let Some(&start) = self.by_len.get(&n).and_then(|v| v.last()) {
            self.remove_span(start);
            return Some(start);
        }
        let len = *self.lens.range(n + 1..).next()?;
        let start = *self.by_len.get(&len)?.last()?;
        self.remove_span(start);
        self.insert_span(start + n, len - n);
        Some(start)
    }

    fn free(&mut self, start: Pgid, n: u64) {
        if n == 0 {
            return;
        }
        let (mut s, mut len) = (start, n);
        if start > 0 {
            if let Some(&left) = self.by_end.get(&(start - 1)) {
                if let Some(l) = self.remove_span(left) {
                    s = left;
                    len += l;
                }
            }
        }
        if let Some(r) = self.remove_span(start + n) {
            len += r;
        }
        self.insert_span(s, len);
    }

    fn free_count(&self) -> u64 {
        self.count
    }

    fn spans(&self) -> Vec<(Pgid, u64)> {
        let mut v: Vec<(Pgid, u64)> = self.by_start.iter().map(|(&s, &(l, _))| (s, l)).collect();
        v.sort_unstable();
        v
    }
}

/// Sorted array of free page ids; allocate scans linearly (bbolt's "array" freelist).
#[derive(Default, Debug, Clone)]
pub struct ArrayFreelist {
    ids: Vec<Pgid>,
}

impl Freelist for ArrayFreelist {
    fn allocate(&mut self, n: u64) -> Option<Pgid> {
        if n == 0 || self.ids.is_empty() {
            return None;
        }
        let n = n as usize;
        let mut run_start = 0usize;
        for i in 0..self.ids.len() {
            if i > 0 && self.ids[i] != self.ids[i - 1] + 1 {
                run_start = i;
            }
            if i + 1 - run_start == n {
                let first = self.ids[run_start];
                self.ids.drain(run_start..=i);
                return Some(first);
            }
        }
        None
    }

    fn free(&mut self, start: Pgid, n: u64) {
        let pos = self.ids.partition_point(|&p| p < start);
        self.ids.splice(pos..pos, start..start + n);
    }

    fn free_count(&self) -> u64 {
        self.ids.len() as u64
    }

    fn spans(&self) -> Vec<(Pgid, u64)> {
        let mut v: Vec<(Pgid, u64)> = Vec::new();
        for &p in &self.ids {
            match v.last_mut() {
                Some((s, l)) if *s + *l == p => *l += 1,
                _ => v.push((p, 1)),
            }
        }
        v
    }

    fn ids(&self) -> Vec<Pgid> {
        self.ids.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn model_check<F: Freelist>(f: &F, model: &BTreeSet<Pgid>) {
        assert_eq!(f.free_count(), model.len() as u64);
        assert_eq!(f.ids(), model.iter().copied().collect::<Vec<_>>());
        // spans are maximal: no two adjacent
        let spans = f.spans();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 < w[1].0, "spans not merged: {w:?}");
        }
    }

    fn randomized<F: Freelist>(seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut f = F::default();
        let mut model = BTreeSet::new();
        let universe = 500u64;
        for _ in 0..3000 {
            if rng.gen_bool(0.5) {
                let start = rng.gen_range(0..universe);
                let n = rng.gen_range(1..6u64);
                if (start..start + n).all(|p| !model.contains(&p)) {
                    f.free(start, n);
                    model.extend(start..start + n);
                }
            } else {
                let n = rng.gen_range(1..5u64);
                match f.allocate(n) {
                    Some(s) => {
                        for p in s..s + n {
                            assert!(model.remove(&p), "allocated non-free page {p}");
                        }
                    }
                    None => {
                        // no run of n in the model either
                        let ids: Vec<_> = model.iter().copied().collect();
                        let mut best = 0u64;
                        let mut run = 0u64;
                        for i in 0..ids.len() {
                            run = if i > 0 && ids[i] == ids[i - 1] + 1 {
                                run + 1
                            } else {
                                1
                            };
                            best = best.max(run);
                        }
                        assert!(best < n, "allocate({n}) failed but a run of {best} exists");
                    }
                }
            }
            model_check(&f, &model);
        }
    }

    #[test]
    fn span_matches_model() {
        for seed in 0..4 {
            randomized::<SpanFreelist>(seed);
        }
    }

    #[test]
    fn array_matches_model() {
        for seed in 0..4 {
            randomized::<ArrayFreelist>(seed);
        }
    }

    #[test]
    fn span_merges_neighbours() {
        let mut f = SpanFreelist::default();
        f.free(10, 2);
        f.free(14, 2);
        assert_eq!(f.spans(), vec![(10, 2), (14, 2)]);
        f.free(12, 2);
        assert_eq!(f.spans(), vec![(10, 6)]);
        assert_eq!(f.allocate(6), Some(10));
        assert_eq!(f.free_count(), 0);
        assert_eq!(f.allocate(1), None);
    }

    #[test]
    fn span_prefers_exact_fit_then_splits_smallest() {
        let mut f = SpanFreelist::from_ids(&[3, 4, 5, 6, 10, 20, 21]);
        assert_eq!(f.allocate(1), Some(10));
        assert_eq!(f.allocate(1), Some(20));
        assert_eq!(f.spans(), vec![(3, 4), (21, 1)]);
        assert_eq!(f.allocate(3), Some(3));
        assert_eq!(f.spans(), vec![(6, 1), (21, 1)]);
        assert_eq!(f.allocate(2), None);
    }
}
