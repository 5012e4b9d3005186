//! A reference model of etcd's revision index for the tests: a plain `BTreeMap` behind one
//! lock, written from the rules (not from the index's code). Every key keeps its full list
//! of events forever plus the set of revisions compaction has not dropped yet; answers are
//! derived from those two on every call.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Mutex;

use cairn_index::{GenerationDump, KeyAt, KeyDump, Revision};

#[derive(Clone, Copy, Debug)]
struct Event {
    rev: Revision,
    tombstone: bool,
}

#[derive(Default, Debug)]
struct ModelKey {
    /// Every put and tombstone ever applied, in order.
    events: Vec<Event>,
    /// The revisions compaction has not dropped.
    retained: BTreeSet<Revision>,
}

/// A generation as the model derives it: the original events of one life of the key,
/// restricted to the retained ones.
struct Gen {
    created: Revision,
    /// Number of events of the whole original generation.
    total: i64,
    /// Retained (revision, 1-based version) pairs, ascending.
    kept: Vec<(Revision, i64)>,
    /// The generation ends with a tombstone.
    closed: bool,
}

impl ModelKey {
    fn live(&self) -> bool {
        self.events.last().is_some_and(|e| !e.tombstone)
    }

    /// The generations that still have retained revisions, oldest first.
    fn gens(&self) -> Vec<Gen> {
        let mut out = Vec::new();
        let mut cur: Option<Gen> = None;
        for e in &self.events {
            let g = cur.get_or_insert_with(|| Gen {
                created: e.rev,
                total: 0,
                kept: Vec::new(),
                closed: false,
            });
            g.total += 1;
            if self.retained.contains(&e.rev) {
                g.kept.push((e.rev, g.total));
            }
            if e.tombstone {
                let mut g = cur.take().unwrap();
                g.closed = true;
                if !g.kept.is_empty() {
                    out.push(g);
                }
            }
        }
        if let Some(g) = cur {
            if !g.kept.is_empty() {
                out.push(g);
            }
        }
        out
    }

    fn get(&self, at: i64) -> Option<KeyAt> {
        let gens = self.gens();
        let g = gens.iter().rev().find(|g| g.kept[0].0.main <= at)?;
        if g.closed && g.kept.last().unwrap().0.main <= at {
            return None;
        }
        let &(rev, version) = g.kept.iter().rev().find(|(r, _)| r.main <= at)?;
        Some(KeyAt {
            modified: rev,
            created: g.created,
            version,
        })
    }

    /// The revision a compaction at `at` keeps, and whether it is the tombstone of its
    /// generation; plus the revisions it drops.
    fn compaction(&self, at: i64) -> (Option<(Revision, bool)>, Vec<Revision>) {
        let mut drop = Vec::new();
        let mut kept = None;
        let mut first_remaining = true;
        for g in self.gens() {
            let tomb = g.kept.last().unwrap().0;
            if g.closed && tomb.main < at {
                drop.extend(g.kept.iter().map(|k| k.0));
                continue;
            }
            if first_remaining {
                first_remaining = false;
                let below: Vec<Revision> = g
                    .kept
                    .iter()
                    .map(|k| k.0)
                    .filter(|r| r.main <= at)
                    .collect();
                if let Some((&last, older)) = below.split_last() {
                    drop.extend_from_slice(older);
                    kept = Some((last, g.closed && last == tomb));
                }
            }
        }
        (kept, drop)
    }

    fn since(&self, rev: i64, out: &mut Vec<Revision>) {
        let mut mine: Vec<Revision> = self
            .retained
            .iter()
            .copied()
            .filter(|r| r.main >= rev)
            .collect();
        // Per main revision only the largest sub.
        mine.dedup_by(|later, earlier| {
            if later.main == earlier.main {
                *earlier = *later;
                true
            } else {
                false
            }
        });
        out.extend(mine);
    }

    fn dump(&self, key: &[u8]) -> Option<KeyDump> {
        if self.retained.is_empty() {
            return None;
        }
        let mut generations: Vec<GenerationDump> = self
            .gens()
            .into_iter()
            .map(|g| GenerationDump {
                created: g.created,
                version: g.total,
                revs: g.kept.iter().map(|k| k.0).collect(),
            })
            .collect();
        if !self.live() {
            generations.push(GenerationDump::default());
        }
        Some(KeyDump {
            key: bytes::Bytes::copy_from_slice(key),
            generations,
        })
    }
}

type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Independent implementation of etcd's range conventions.
fn bounds<'a>(start: &'a [u8], end: &'a [u8]) -> Option<Bounds<'a>> {
    if end.is_empty() {
        Some((Bound::Included(start), Bound::Included(start)))
    } else if end == b"\0" {
        Some((Bound::Included(start), Bound::Unbounded))
    } else if start < end {
        Some((Bound::Included(start), Bound::Excluded(end)))
    } else {
        None
    }
}

/// The reference model.
#[derive(Default)]
pub struct Model {
    keys: Mutex<BTreeMap<Vec<u8>, ModelKey>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ModelError {
    NotFound,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&self, key: &[u8], rev: Revision) {
        let mut keys = self.keys.lock().unwrap();
        let k = keys.entry(key.to_vec()).or_default();
        k.events.push(Event {
            rev,
            tombstone: false,
        });
        k.retained.insert(rev);
    }

    pub fn tombstone(&self, key: &[u8], rev: Revision) -> Result<(), ModelError> {
        let mut keys = self.keys.lock().unwrap();
        let k = keys.get_mut(key).ok_or(ModelError::NotFound)?;
        // A key whose history compaction emptied is gone from the index altogether.
        if !k.live() || k.retained.is_empty() {
            return Err(ModelError::NotFound);
        }
        k.events.push(Event {
            rev,
            tombstone: true,
        });
        k.retained.insert(rev);
        Ok(())
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.keys.lock().unwrap().get(key).and_then(|k| k.get(at))
    }

    fn visit(&self, start: &[u8], end: &[u8], mut f: impl FnMut(&[u8], &ModelKey)) {
        let keys = self.keys.lock().unwrap();
        if let Some(b) = bounds(start, end) {
            for (k, v) in keys.range::<[u8], _>(b) {
                f(k, v);
            }
        }
    }

    pub fn range(&self, start: &[u8], end: &[u8], at: i64) -> (Vec<Vec<u8>>, Vec<Revision>) {
        let mut keys = Vec::new();
        let mut revs = Vec::new();
        self.visit(start, end, |k, v| {
            if let Some(a) = v.get(at) {
                keys.push(k.to_vec());
                revs.push(a.modified);
            }
        });
        (keys, revs)
    }

    pub fn revisions(
        &self,
        start: &[u8],
        end: &[u8],
        at: i64,
        limit: usize,
    ) -> (Vec<Revision>, usize) {
        let (_, revs) = self.range(start, end, at);
        let total = revs.len();
        let shown = if limit == 0 {
            revs
        } else {
            revs.into_iter().take(limit).collect()
        };
        (shown, total)
    }

    pub fn count(&self, start: &[u8], end: &[u8], at: i64) -> usize {
        self.range(start, end, at).0.len()
    }

    pub fn range_since(&self, start: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        self.visit(start, end, |_, v| v.since(rev, &mut out));
        out.sort();
        out
    }

    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let keys = self.keys.lock().unwrap();
        keys.values()
            .filter_map(|k| match k.compaction(at).0 {
                Some((rev, false)) => Some(rev),
                _ => None,
            })
            .collect()
    }

    pub fn compact(&self, at: i64) -> HashSet<Revision> {
        let mut keys = self.keys.lock().unwrap();
        let mut keep = HashSet::new();
        for k in keys.values_mut() {
            let (kept, dropped) = k.compaction(at);
            if let Some((rev, _)) = kept {
                keep.insert(rev);
            }
            for r in dropped {
                k.retained.remove(&r);
            }
        }
        // Keys without retained revisions are gone; forget their old events too, so a
        // later put starts from scratch exactly as in the index.
        keys.retain(|_, k| !k.retained.is_empty());
        keep
    }

    pub fn dump(&self) -> Vec<KeyDump> {
        let keys = self.keys.lock().unwrap();
        keys.iter().filter_map(|(k, v)| v.dump(k)).collect()
    }
}

/// etcd's prefix end: the smallest key above every key with this prefix ("\0" if none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().unwrap() = last + 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}
