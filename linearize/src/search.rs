//! The search: Wing & Gong's backtracking with Lowe's memoization over the compiled history
//! (see the crate documentation for why it is fast on etcd histories).

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::compile::{COp, Compiled, KeyReads};
use crate::model::{diff, mix, Mark, State};

/// The cache keys are fingerprints already: fold them instead of hashing again.
#[derive(Default)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }

    fn write_u128(&mut self, x: u128) {
        self.0 = self.0.rotate_left(23) ^ (x as u64) ^ ((x >> 64) as u64).rotate_left(7);
    }

    fn write_i64(&mut self, x: i64) {
        self.0 ^= mix(x as u64);
    }
}

/// (fingerprint of the linearized set, fingerprint of the slots, revision).
pub(crate) type NodeKey = (u128, u128, i64);

pub(crate) struct Frame {
    pub(crate) op: u32,
    /// The state before the op.
    pub(crate) mark: Mark,
    /// Taken because nothing else could come first: on backtrack the node fails as a whole.
    pub(crate) forced: bool,
}

pub(crate) enum Forced {
    Took,
    /// The forced move leads to a node already explored: this node fails too.
    Fails,
    Nothing,
}

pub(crate) const NIL: u32 = u32::MAX;

/// A doubly linked list over op indices with two sentinels; unlinking and relinking in LIFO
/// order restores it exactly (dancing links).
pub(crate) struct Links {
    pub(crate) next: Vec<u32>,
    pub(crate) prev: Vec<u32>,
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

impl Links {
    /// A list of `order`, whose entries are below `size`.
    pub(crate) fn new(size: u32, order: impl Iterator<Item = u32>) -> Links {
        let (head, tail) = (size, size + 1);
        let mut next = vec![NIL; size as usize + 2];
        let mut prev = vec![NIL; size as usize + 2];
        let mut last = head;
        for e in order {
            next[last as usize] = e;
            prev[e as usize] = last;
            last = e;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;
        Links {
            next,
            prev,
            head,
            tail,
        }
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        self.prev[n as usize] = e;
    }
}

pub(crate) struct Search<'a> {
    pub(crate) ops: &'a [COp],
    pub(crate) values: &'a [Vec<u8>],
    pub(crate) reads: &'a [KeyReads],
    pub(crate) n: u32,
    /// Call and return entries of the ops with a known output, by time: the call entry of op
    /// `i` is `i`, its return entry `n + i`. Linearized ops are unlinked (relinked on
    /// backtrack).
    pub(crate) entries: Links,
    /// The ambiguous ops not placed, by call time.
    pub(crate) ambiguous: Links,
    pub(crate) state: State,
    pub(crate) frames: Vec<Frame>,
    pub(crate) set_fp: u128,
    /// Ops with a known output (which must all be placed) not linearized yet.
    pub(crate) remaining: usize,
    /// Their (output revision, op): the store revision never exceeds the least of them, as
    /// it never goes down.
    pub(crate) unplaced: BTreeSet<(i64, u32)>,
    pub(crate) cache: HashSet<NodeKey, BuildHasherDefault<FoldHasher>>,
    /// The deepest path found (by known ops linearized), as op indices.
    pub(crate) best: Vec<u32>,
    pub(crate) best_remaining: usize,
    /// `frames[..shared]` equals `best[..shared]`.
    pub(crate) shared: usize,
    pub(crate) steps: u64,
}

impl<'a> Search<'a> {
    pub(crate) fn new(c: &'a Compiled) -> Search<'a> {
        let n = c.ops.len() as u32;
        // (time, returns after calls at equal times, entry)
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n as usize);
        let mut ambiguous: Vec<(u64, u32)> = Vec::new();
        for (i, op) in c.ops.iter().enumerate() {
            let i = i as u32;
            if op.output.is_none() {
                ambiguous.push((op.call, i));
                continue;
            }
            events.push((op.call, 0, i));
            if let Some(r) = op.ret {
                events.push((r, 1, n + i));
            }
        }
        events.sort_unstable();
        ambiguous.sort_unstable();
        let remaining = c.ops.iter().filter(|o| o.output.is_some()).count();
        let unplaced = (0..n)
            .filter_map(|i| Some((c.ops[i as usize].output.as_ref()?.revision(), i)))
            .collect();
        Search {
            ops: &c.ops,
            values: &c.names.values,
            reads: &c.reads,
            n,
            entries: Links::new(2 * n, events.iter().map(|&(_, _, e)| e)),
            ambiguous: Links::new(n, ambiguous.iter().map(|&(_, i)| i)),
            state: c.initial.clone(),
            frames: Vec::new(),
            set_fp: 0,
            remaining,
            unplaced,
            cache: HashSet::default(),
            best: Vec::new(),
            best_remaining: remaining,
            shared: 0,
            steps: 0,
        }
    }

    fn is_call(&self, e: u32) -> bool {
        e < self.n
    }

    /// Runs the op against the model state; on acceptance returns the state before it and
    /// whether the revision stayed (nothing changed). On rejection the state is unchanged.
    fn try_op(&mut self, i: u32) -> Option<(Mark, bool)> {
        let op = &self.ops[i as usize];
        let m = self.state.mark();
        let out = self.state.step(&op.input, self.values);
        if let Some(seen) = &op.output {
            if diff(&out, seen).is_err() {
                self.state.rollback(m);
                return None;
            }
        }
        Some((m, self.state.rev == m.rev))
    }

    /// Linearizes op `i` (already applied to the state) unless the node it leads to was seen.
    fn enter(&mut self, i: u32, mark: Mark, forced: bool) -> bool {
        let op = &self.ops[i as usize];
        let set_fp = self.set_fp.wrapping_add(op.tag);
        // Past the revision of an op still to place: a dead end. (The op itself, if it has
        // an output, is at most at the revision it reports.)
        let beyond = self
            .unplaced
            .first()
            .is_some_and(|&(rev, _)| self.state.rev > rev);
        if beyond || !self.cache.insert((set_fp, self.state.fp, self.state.rev)) {
            self.state.rollback(mark);
            return false;
        }
        self.set_fp = set_fp;
        if let Some(out) = &op.output {
            self.entries.unlink(i);
            if op.ret.is_some() {
                self.entries.unlink(self.n + i);
            }
            self.remaining -= 1;
            self.unplaced.remove(&(out.revision(), i));
        } else {
            self.ambiguous.unlink(i);
        }
        self.frames.push(Frame {
            op: i,
            mark,
            forced,
        });
        if self.remaining < self.best_remaining {
            self.best_remaining = self.remaining;
            self.best.truncate(self.shared);
            self.best
                .extend(self.frames[self.shared..].iter().map(|f| f.op));
            self.shared = self.frames.len();
        }
        true
    }

    /// Undoes the last `enter`.
    fn pop(&mut self) -> Option<Frame> {
        let f = self.frames.pop()?;
        let op = &self.ops[f.op as usize];
        if let Some(out) = &op.output {
            if op.ret.is_some() {
                self.entries.relink(self.n + f.op);
            }
            self.entries.relink(f.op);
            self.remaining += 1;
            self.unplaced.insert((out.revision(), f.op));
        } else {
            self.ambiguous.relink(f.op);
        }
        self.set_fp = self.set_fp.wrapping_sub(op.tag);
        self.state.rollback(f.mark);
        self.shared = self.shared.min(self.frames.len());
        Some(f)
    }

    /// The candidates with a known output are the calls before the first return entry. One
    /// the model accepts without a state change comes first; else one that the model
    /// accepts.
    fn forced(&mut self) -> Forced {
        let mut bump = None;
        let mut e = self.entries.next[self.entries.head as usize];
        while e != self.entries.tail && self.is_call(e) {
            if let Some((m, unchanged)) = self.try_op(e) {
                if unchanged {
                    return if self.enter(e, m, true) {
                        Forced::Took
                    } else {
                        Forced::Fails
                    };
                }
                self.state.rollback(m);
                bump.get_or_insert(e);
            }
            e = self.entries.next[e as usize];
        }
        match bump {
            Some(b) => {
                let (m, _) = self.try_op(b).expect("accepted a moment ago");
                if self.enter(b, m, true) {
                    Forced::Took
                } else {
                    Forced::Fails
                }
            }
            None => Forced::Nothing,
        }
    }

    /// The latest ambiguous candidate: ambiguous ops called no later than the first return
    /// entry still pending can come next.
    fn last_ambiguous_candidate(&self) -> u32 {
        let mut e = self.entries.next[self.entries.head as usize];
        while e != self.entries.tail && self.is_call(e) {
            e = self.entries.next[e as usize];
        }
        let horizon = if e == self.entries.tail {
            u64::MAX
        } else {
            self.ops[(e - self.n) as usize].ret.unwrap_or(u64::MAX)
        };
        let mut a = self.ambiguous.prev[self.ambiguous.tail as usize];
        while a != self.ambiguous.head && self.ops[a as usize].call > horizon {
            a = self.ambiguous.prev[a as usize];
        }
        a
    }

    /// True if later reads rule out what the op just applied (since `m`) did to a key.
    fn contradicted(&self, m: &Mark) -> bool {
        let rev = self.state.rev;
        self.state.undo[m.undo..].iter().any(|&(k, before)| {
            let after = self.state.kv[k as usize];
            self.reads[k as usize].forbids(rev, before, after)
        })
    }

    /// Tries the ambiguous candidates from `from` back to the first one (latest call first:
    /// an op lost long ago is less likely to fill a gap now than one just made). An op that
    /// would change nothing is skipped (the same as never happening), and so is one whose
    /// write later reads rule out.
    fn branch(&mut self, from: u32) -> bool {
        let mut a = from;
        while a != self.ambiguous.head {
            if let Some((m, unchanged)) = self.try_op(a) {
                if unchanged || self.contradicted(&m) {
                    self.state.rollback(m);
                } else if self.enter(a, m, false) {
                    return true;
                }
            }
            a = self.ambiguous.prev[a as usize];
        }
        false
    }

    /// `Ok(true)`: linearizable; `Ok(false)`: not; `Err`: a limit was hit.
    pub(crate) fn run(
        &mut self,
        deadline: Option<Instant>,
        max_states: usize,
    ) -> Result<bool, String> {
        let mut resume: Option<u32> = None;
        loop {
            if self.remaining == 0 {
                return Ok(true);
            }
            self.steps += 1;
            if self.steps % 1024 == 0 {
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(format!(
                        "time limit after {} steps, best prefix {} ops",
                        self.steps,
                        self.best.len()
                    ));
                }
                if self.cache.len() > max_states {
                    return Err(format!("state limit ({max_states}) reached"));
                }
            }
            let moved = match resume.take() {
                Some(from) => self.branch(from),
                None => match self.forced() {
                    Forced::Took => true,
                    Forced::Fails => false,
                    Forced::Nothing => self.branch(self.last_ambiguous_candidate()),
                },
            };
            if moved {
                continue;
            }
            loop {
                let Some(f) = self.pop() else {
                    return Ok(false);
                };
                if !f.forced {
                    resume = Some(self.ambiguous.prev[f.op as usize]);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(l: &Links) -> Vec<u32> {
        let mut v = Vec::new();
        let mut e = l.next[l.head as usize];
        while e != l.tail {
            v.push(e);
            e = l.next[e as usize];
        }
        v
    }

    #[test]
    fn links_relinked_in_lifo_order_are_restored_exactly() {
        let mut l = Links::new(5, [3, 0, 4, 1].into_iter());
        assert_eq!(order(&l), [3, 0, 4, 1]);
        l.unlink(0);
        l.unlink(4);
        l.unlink(3);
        assert_eq!(order(&l), [1]);
        l.relink(3);
        l.relink(4);
        l.relink(0);
        assert_eq!(order(&l), [3, 0, 4, 1]);
        assert_eq!(l.prev[l.tail as usize], 1);
    }
}
