//! Explaining a violation: the longest linearizable prefix found and why none of the ops that
//! could come next fits; and the violations visible without a search.

use std::collections::HashSet;

use crate::check::Violation;
use crate::compile::{COp, Compiled, Seen};
use crate::history::{show, Op};
use crate::model::{diff, for_each_put, ran_ops, CInput, CKv, COutput, CResult, KeySel, State};
use crate::txn::TxnTree;

/// How many ops of the prefix the explanation shows.
pub(crate) const SHOWN_PREFIX: usize = 12;

pub(crate) fn explain(history: &[Op], c: &Compiled, best: &[u32]) -> Violation {
    use std::fmt::Write as _;
    let mut state = c.initial.clone();
    let mut revs = Vec::with_capacity(best.len());
    let mut placed = vec![false; c.ops.len()];
    for &i in best {
        state.step(&c.ops[i as usize].input, &c.names.values);
        revs.push(state.rev);
        placed[i as usize] = true;
    }
    let pending: Vec<usize> = (0..c.ops.len())
        .filter(|&i| !placed[i] && c.ops[i].output.is_some())
        .collect();
    // The pending op that returned first: nothing called after it can come next.
    let first_return = pending
        .iter()
        .copied()
        .filter(|&i| c.ops[i].ret.is_some())
        .min_by_key(|&i| c.ops[i].ret);
    let horizon = first_return.and_then(|i| c.ops[i].ret).unwrap_or(u64::MAX);
    // The least revision a pending op reports: the store may not move past it.
    let ceiling = pending
        .iter()
        .filter_map(|&i| Some(c.ops[i].output.as_ref()?.revision()))
        .min()
        .unwrap_or(i64::MAX);
    let stuck: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|&i| {
            c.ops[i].call <= horizon
                || c.ops[i].output.as_ref().map(COutput::revision) == Some(ceiling)
        })
        .collect();
    let known = c.ops.iter().filter(|o| o.output.is_some()).count();
    let placed_known = known - pending.len();
    let ambiguous_open = (0..c.ops.len())
        .filter(|&i| !placed[i] && c.ops[i].output.is_none())
        .count();

    let mut t = String::new();
    let _ = writeln!(
        t,
        "at most {placed_known} of the {known} ops with a known outcome can be put in an order \
         consistent with real time and the model ({ambiguous_open} ambiguous writes left unplaced)"
    );
    let skip = best.len().saturating_sub(SHOWN_PREFIX);
    let _ = writeln!(
        t,
        "end of the longest linearizable prefix ({} ops{}), with the model revision after each:",
        best.len(),
        if skip > 0 {
            format!(", first {skip} not shown")
        } else {
            String::new()
        }
    );
    for (k, &i) in best.iter().enumerate().skip(skip) {
        let op = &c.ops[i as usize];
        let _ = writeln!(t, "  {}  => rev {}", op_line(history, op), revs[k]);
    }
    if best.is_empty() {
        let _ = writeln!(t, "  (nothing)");
    }
    let _ = writeln!(
        t,
        "none of the ops that could come next fits (model revision {}):",
        state.rev
    );
    let mut keys: Vec<u32> = Vec::new();
    for &i in &stuck {
        let op = &c.ops[i];
        let m = state.mark();
        let out = state.step(&op.input, &c.names.values);
        let why = match (op.call > horizon, op.output.as_ref().map(|seen| diff(&out, seen))) {
            (true, _) => format!(
                "must come after #{}, which returned before it was called",
                first_return.map_or(0, |f| c.ops[f].orig)
            ),
            (false, Some(Err(r))) => r.to_string(),
            _ if state.rev > ceiling => format!(
                "accepted here, but it moves the revision past {ceiling}, which a pending op reports"
            ),
            _ => "accepted here, but nothing can follow it".to_string(),
        };
        state.rollback(m);
        let _ = writeln!(t, "  {}", op_line(history, op));
        let _ = writeln!(
            t,
            "      model would answer: {}\n      {why}",
            c.names.export(&out)
        );
        collect_keys(&op.input, &mut keys);
    }
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        let _ = write!(t, "model state of those keys:");
        for k in keys {
            match state.kv[k as usize] {
                Some(val) => {
                    let _ = write!(t, " {}", c.names.export_kv(&CKv { key: k, val }));
                }
                None => {
                    let _ = write!(t, " {}=<absent>", show(&c.names.keys[k as usize]));
                }
            }
        }
        let _ = writeln!(t);
    }
    Violation {
        prefix: best.iter().map(|&i| c.ops[i as usize].orig).collect(),
        stuck: stuck.iter().map(|&i| c.ops[i].orig).collect(),
        text: t,
    }
}

pub(crate) fn op_line(history: &[Op], op: &COp) -> String {
    let mut s = format!("#{} {}", op.orig, history[op.orig]);
    if let (true, Some(COutput::Put { rev })) = (op.inferred, &op.output) {
        s.push_str(&format!(
            " (a read saw its value: took effect at rev {rev})"
        ));
    }
    s
}

/// Violations visible without a search (and which a search could take very long to prove
/// when many writes are ambiguous): a read that saw a value no op wrote, and a read that saw
/// a key with a mod revision below that of a write with a known revision at or before the
/// read's (a stale read).
pub(crate) fn static_violation(history: &[Op], c: &Compiled) -> Option<Violation> {
    let mut written: HashSet<(u32, u32)> = HashSet::new();
    for (k, v) in c.initial.kv.iter().enumerate() {
        if let Some(v) = v {
            written.insert((k as u32, v.value));
        }
    }
    for op in &c.ops {
        for_each_put(&op.input, &mut |k, v| {
            written.insert((k, v));
        });
    }
    let line = |i: usize| op_line(history, &c.ops[i]);
    let key = |k: u32| show(&c.names.keys[k as usize]);
    for (k, reads) in c.reads.iter().enumerate() {
        for (j, s) in reads.seen.iter().enumerate() {
            let by = reads.by[j] as usize;
            let value = match &c.ops[by].output {
                Some(COutput::Get { kvs, .. }) => kvs.iter().find(|kv| kv.key == k as u32),
                Some(COutput::Txn { results, .. }) => results
                    .iter()
                    .filter_map(|r| match r {
                        CResult::Get(kvs) => kvs.iter().find(|kv| kv.key == k as u32),
                        _ => None,
                    })
                    .find(|kv| kv.val.modr == s.modr),
                _ => None,
            };
            if let Some(kv) = value {
                if !written.contains(&(k as u32, kv.val.value)) {
                    return Some(Violation {
                        prefix: Vec::new(),
                        stuck: vec![c.ops[by].orig],
                        text: format!(
                            "a read saw a value of {} that no op wrote:\n  {}\n",
                            key(k as u32),
                            line(by)
                        ),
                    });
                }
            }
        }
    }
    for (w, op) in c.ops.iter().enumerate() {
        // (key, revision, true for a put / false for a delete that removed it)
        let mut writes: Vec<(u32, i64, bool)> = Vec::new();
        match (&op.input, &op.output) {
            (CInput::Put { key, .. }, Some(COutput::Put { rev })) => {
                writes.push((*key, *rev, true))
            }
            (CInput::Delete(KeySel::One(k)), Some(COutput::Delete { rev, deleted }))
                if *deleted > 0 =>
            {
                writes.push((*k, *rev, false))
            }
            (CInput::Txn { .. }, Some(out)) => {
                let rev = out.revision();
                for (b, r) in ran_ops(&op.input, out).into_iter().flatten() {
                    match (b, r) {
                        (CInput::Put { key, .. }, _) => writes.push((*key, rev, true)),
                        (CInput::Delete(KeySel::One(k)), Some(CResult::Delete(1..))) => {
                            writes.push((*k, rev, false))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        for (k, rev, put) in writes {
            // After a put at `rev` the key's mod revision is at least `rev`; after a delete
            // any incarnation is created after `rev`.
            let reads = &c.reads[k as usize];
            let from = reads.h.partition_point(|&h| h < rev);
            let stale = |s: &Seen| if put { s.modr < rev } else { s.create < rev };
            let Some(j) = (from..reads.h.len()).find(|&j| stale(&reads.seen[j])) else {
                continue;
            };
            let r = reads.by[j] as usize;
            if r == w {
                continue;
            }
            let what = if put { "a write" } else { "a delete" };
            return Some(Violation {
                prefix: Vec::new(),
                stuck: vec![c.ops[r].orig, op.orig],
                text: format!(
                    "a read at revision {} saw {} (created at revision {}, last written at \
                     revision {}), but {what} of it took effect at revision {rev}:\n  {}\n  {}\n",
                    reads.h[j],
                    key(k),
                    reads.seen[j].create,
                    reads.seen[j].modr,
                    line(r),
                    line(w)
                ),
            });
        }
    }
    None
}

/// Adds the ids of every key `input` touches (compares too) to `keys`.
fn collect_keys(input: &CInput, keys: &mut Vec<u32>) {
    input.walk(&mut |i| match i {
        CInput::Put { key, .. } => keys.push(*key),
        CInput::Get(sel) | CInput::Delete(sel) => keys.extend(State::ids(*sel)),
        CInput::Txn { compares, .. } => keys.extend(compares.iter().map(|c| c.key)),
    });
}

#[cfg(test)]
mod tests {
    use crate::{check, Input, Kv, Op, Output};

    #[test]
    fn a_value_nobody_wrote_is_found_before_the_search() {
        let h = vec![Op::ok(
            0,
            0,
            1,
            Input::get("a"),
            Output::Get {
                revision: 1,
                kvs: vec![Kv::new("a", "zz", 1, 1, 1)],
            },
        )];
        let r = check(&h);
        let v = r.expect_illegal();
        assert_eq!((v.prefix.clone(), v.stuck.clone()), (vec![], vec![0]));
        assert!(
            v.to_string()
                .starts_with("a read saw a value of a that no op wrote:\n  #0 client 0"),
            "{v}"
        );
        assert_eq!(r.steps, 0, "no search");
    }

    #[test]
    fn a_stale_read_names_the_write_it_missed() {
        let h = vec![
            Op::ok(0, 0, 1, Input::put("a", "1"), Output::Put { revision: 2 }),
            Op::ok(0, 2, 3, Input::put("a", "2"), Output::Put { revision: 3 }),
            Op::ok(
                1,
                4,
                5,
                Input::get("a"),
                Output::Get {
                    revision: 3,
                    kvs: vec![Kv::new("a", "1", 2, 2, 1)],
                },
            ),
        ];
        let v = check(&h).expect_illegal().clone();
        assert_eq!(v.stuck, [2, 1]);
        assert!(
            v.to_string().starts_with(
                "a read at revision 3 saw a (created at revision 2, last written at revision \
                 2), but a write of it took effect at revision 3:\n"
            ),
            "{v}"
        );
    }

    #[test]
    fn the_explanation_shows_the_prefix_and_why_nothing_fits_next() {
        // Two puts that do not overlap cannot both be at revision 2.
        let h = vec![
            Op::ok(0, 0, 1, Input::put("a", "1"), Output::Put { revision: 2 }),
            Op::ok(0, 2, 3, Input::put("b", "1"), Output::Put { revision: 2 }),
        ];
        let v = check(&h).expect_illegal().clone();
        assert_eq!((v.prefix.clone(), v.stuck.clone()), (vec![0], vec![1]));
        let text = v.to_string();
        for want in [
            "at most 1 of the 2 ops with a known outcome can be put in an order consistent \
             with real time and the model (0 ambiguous writes left unplaced)",
            "  #0 client 0 [0..1] put a=1 -> rev 2  => rev 2",
            "none of the ops that could come next fits (model revision 2):",
            "      model would answer: rev 3\n      header revision differs (model 3, client saw 2)",
            "model state of those keys: b=<absent>",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
