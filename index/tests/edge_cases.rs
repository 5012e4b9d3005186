//! Table-driven edge cases of etcd's index semantics. Each case applies a list of writes
//! and compactions, then checks reads. Revisions are written as `main` (sub 0) unless a
//! case says otherwise.

use std::collections::HashSet;

use cairn_index::{Error, Index, KeyAt, Revision};

#[derive(Clone, Copy, Debug)]
enum Op {
    Put(&'static [u8], i64, i64),
    Del(&'static [u8], i64, i64),
    /// A tombstone that must fail with `RevisionNotFound`.
    DelFails(&'static [u8], i64),
    /// Compact at a revision; the expected kept revisions (main, sub 0).
    Compact(i64, &'static [i64]),
    /// Compact, with the expected kept revisions as (main, sub).
    CompactSubs(i64, &'static [(i64, i64)]),
    RestorePut(&'static [u8], i64, i64, i64),
    RestoreTombstone(&'static [u8], i64),
}

#[derive(Clone, Copy, Debug)]
enum Check {
    /// key, at, expected (modified main, created main, version) or None for not found.
    Get(&'static [u8], i64, Option<(i64, i64, i64)>),
    /// key, at, expected modified revision as (main, sub).
    GetRev(&'static [u8], i64, (i64, i64)),
    /// start, end, at, expected keys.
    Range(&'static [u8], &'static [u8], i64, &'static [&'static [u8]]),
    /// start, end, at, limit, expected revisions (mains), expected total.
    Revisions(
        &'static [u8],
        &'static [u8],
        i64,
        usize,
        &'static [i64],
        usize,
    ),
    Count(&'static [u8], &'static [u8], i64, usize),
    /// start, end, since, expected (main, sub).
    Since(&'static [u8], &'static [u8], i64, &'static [(i64, i64)]),
    Keep(i64, &'static [i64]),
    Len(usize),
}

use Check::*;
use Op::*;

struct Case {
    name: &'static str,
    ops: &'static [Op],
    checks: &'static [Check],
}

const CASES: &[Case] = &[
    Case {
        name: "delete then re-create",
        ops: &[
            Put(b"a", 2, 0),
            Put(b"a", 3, 0),
            Del(b"a", 4, 0),
            Put(b"a", 6, 0),
        ],
        checks: &[
            Get(b"a", 1, None),
            Get(b"a", 2, Some((2, 2, 1))),
            Get(b"a", 3, Some((3, 2, 2))),
            Get(b"a", 4, None),
            Get(b"a", 5, None),
            Get(b"a", 6, Some((6, 6, 1))),
            Get(b"a", 100, Some((6, 6, 1))),
            Range(b"a", b"\0", 5, &[]),
            Range(b"a", b"\0", 6, &[b"a"]),
            Since(b"a", b"", 3, &[(3, 0), (4, 0), (6, 0)]),
            Len(1),
        ],
    },
    Case {
        name: "tombstones on missing and dead keys fail",
        ops: &[
            DelFails(b"a", 1),
            Put(b"a", 2, 0),
            Del(b"a", 3, 0),
            DelFails(b"a", 4),
        ],
        checks: &[Get(b"a", 4, None), Len(1)],
    },
    Case {
        name: "compaction exactly at a tombstone keeps it until the next compaction",
        ops: &[
            Put(b"a", 2, 0),
            Put(b"b", 3, 0),
            Del(b"a", 4, 0),
            Compact(4, &[3, 4]),
        ],
        checks: &[
            Get(b"a", 4, None),
            Get(b"b", 4, Some((3, 3, 1))),
            // The tombstone is still indexed (watch catch-up can report it) ...
            Since(b"a", b"", 4, &[(4, 0)]),
            Len(2),
            // ... but the hash does not count it.
            Keep(4, &[3]),
        ],
    },
    Case {
        name: "compaction above a tombstone removes the key",
        ops: &[
            Put(b"a", 2, 0),
            Put(b"b", 3, 0),
            Del(b"a", 4, 0),
            Compact(4, &[3, 4]),
            Compact(5, &[3]),
        ],
        checks: &[Get(b"a", 5, None), Since(b"a", b"\0", 0, &[(3, 0)]), Len(1)],
    },
    Case {
        name: "compaction at a put",
        ops: &[
            Put(b"a", 2, 0),
            Put(b"a", 3, 0),
            Put(b"a", 5, 0),
            Compact(3, &[3]),
        ],
        checks: &[
            // At the compaction revision: readable.
            Get(b"a", 3, Some((3, 2, 2))),
            Get(b"a", 4, Some((3, 2, 2))),
            Get(b"a", 5, Some((5, 2, 3))),
            // Below it the history is gone: the index says not found (the store answers
            // ErrCompacted before asking).
            Get(b"a", 2, None),
            Range(b"a", b"\0", 2, &[]),
            Since(b"a", b"", 0, &[(3, 0), (5, 0)]),
            Keep(3, &[3]),
        ],
    },
    Case {
        name: "compaction between generations",
        ops: &[
            Put(b"a", 1, 0),
            Del(b"a", 2, 0),
            Put(b"a", 4, 0),
            Del(b"a", 6, 0),
            Compact(3, &[]),
        ],
        checks: &[
            Get(b"a", 3, None),
            Get(b"a", 4, Some((4, 4, 1))),
            Get(b"a", 6, None),
            Since(b"a", b"", 0, &[(4, 0), (6, 0)]),
            Len(1),
        ],
    },
    Case {
        name: "compaction inside a later generation drops the earlier one",
        ops: &[
            Put(b"a", 1, 0),
            Del(b"a", 2, 0),
            Put(b"a", 3, 0),
            Put(b"a", 5, 0),
            Put(b"a", 7, 0),
            Compact(6, &[5]),
        ],
        checks: &[
            Get(b"a", 6, Some((5, 3, 2))),
            Get(b"a", 7, Some((7, 3, 3))),
            // Below the compaction revision only what the kept revision covers remains.
            Get(b"a", 5, Some((5, 3, 2))),
            Get(b"a", 4, None),
            Get(b"a", 1, None),
        ],
    },
    Case {
        name: "sub revisions of one request",
        ops: &[
            Put(b"a", 3, 0),
            Put(b"a", 3, 1),
            Put(b"b", 4, 0),
            Del(b"a", 5, 0),
            Put(b"a", 5, 1),
            CompactSubs(3, &[(3, 1)]),
        ],
        checks: &[
            GetRev(b"a", 3, (3, 1)),
            GetRev(b"a", 4, (3, 1)),
            GetRev(b"a", 5, (5, 1)),
            Since(b"a", b"\0", 3, &[(3, 1), (4, 0), (5, 1)]),
            Keep(5, &[4]),
        ],
    },
    Case {
        name: "key ranges: single, from, prefix, reversed, everything",
        ops: &[
            Put(b"\0", 1, 0),
            Put(b"a", 2, 0),
            Put(b"ab", 3, 0),
            Put(b"abc", 4, 0),
            Put(b"b", 5, 0),
            Put(b"\xff", 6, 0),
            Put(b"\xff\xff", 7, 0),
        ],
        checks: &[
            Range(b"a", b"", 10, &[b"a"]),
            Range(b"zz", b"", 10, &[]),
            // prefix "a" ends at "b"
            Range(b"a", b"b", 10, &[b"a", b"ab", b"abc"]),
            Range(b"ab", b"ac", 10, &[b"ab", b"abc"]),
            Range(
                b"ab",
                b"\0",
                10,
                &[b"ab", b"abc", b"b", b"\xff", b"\xff\xff"],
            ),
            // prefix "\xff" has no end: etcd uses "\0"
            Range(b"\xff", b"\0", 10, &[b"\xff", b"\xff\xff"]),
            Range(
                b"\0",
                b"\0",
                10,
                &[b"\0", b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff"],
            ),
            // end below start, and end equal to start, select nothing
            Range(b"b", b"a", 10, &[]),
            Range(b"b", b"b", 10, &[]),
            // "\0\0" is an ordinary end, not "to the end"
            Range(b"\0", b"\0\0", 10, &[b"\0"]),
            // at an older revision only the keys existing then
            Range(b"\0", b"\0", 3, &[b"\0", b"a", b"ab"]),
            Count(b"\0", b"\0", 10, 7),
            Count(b"a", b"b", 3, 2),
        ],
    },
    Case {
        name: "limit with count",
        ops: &[
            Put(b"k1", 1, 0),
            Put(b"k2", 2, 0),
            Put(b"k3", 3, 0),
            Put(b"k4", 4, 0),
            Del(b"k2", 5, 0),
            Put(b"k5", 6, 0),
        ],
        checks: &[
            Revisions(b"k", b"l", 10, 2, &[1, 3], 4),
            Revisions(b"k", b"l", 10, 0, &[1, 3, 4, 6], 4),
            Revisions(b"k", b"l", 10, 100, &[1, 3, 4, 6], 4),
            Revisions(b"k", b"l", 4, 1, &[1], 4),
            Revisions(b"k2", b"", 10, 1, &[], 0),
            Revisions(b"k3", b"", 10, 5, &[3], 1),
            Count(b"k", b"l", 10, 4),
            Count(b"k", b"l", 4, 4),
            Count(b"k", b"l", 5, 3),
        ],
    },
    Case {
        name: "restore from backend values",
        ops: &[
            RestorePut(b"a", 10, 5, 3),
            RestoreTombstone(b"b", 7),
            Put(b"a", 11, 0),
            RestorePut(b"a", 12, 5, 99),
            RestoreTombstone(b"a", 13),
        ],
        checks: &[
            Get(b"a", 10, Some((10, 5, 3))),
            Get(b"a", 11, Some((11, 5, 4))),
            Get(b"a", 12, Some((12, 5, 5))),
            Get(b"a", 13, None),
            Get(b"b", 7, None),
            Get(b"b", 6, None),
            Since(b"b", b"", 0, &[(7, 0)]),
            Keep(7, &[]),
            Len(2),
        ],
    },
    Case {
        name: "restored lone tombstone leaves at the next compaction",
        ops: &[RestoreTombstone(b"b", 7), Compact(7, &[7]), Compact(8, &[])],
        checks: &[Len(0), Get(b"b", 8, None)],
    },
    Case {
        name: "put after compaction removed the key starts afresh",
        ops: &[
            Put(b"a", 1, 0),
            Del(b"a", 2, 0),
            Compact(3, &[]),
            Put(b"a", 4, 0),
        ],
        checks: &[Get(b"a", 4, Some((4, 4, 1))), Get(b"a", 3, None), Len(1)],
    },
];

fn rev(main: i64) -> Revision {
    Revision::new(main, 0)
}

fn revs(mains: &[i64]) -> HashSet<Revision> {
    mains.iter().map(|&m| rev(m)).collect()
}

#[test]
fn edge_cases() {
    for case in CASES {
        let name = case.name;
        let index = Index::new();
        for op in case.ops {
            match *op {
                Put(k, main, sub) => index.put(k, Revision::new(main, sub)).unwrap(),
                Del(k, main, sub) => index.tombstone(k, Revision::new(main, sub)).unwrap(),
                DelFails(k, main) => {
                    assert_eq!(
                        index.tombstone(k, rev(main)),
                        Err(Error::RevisionNotFound),
                        "{name}"
                    )
                }
                Compact(at, keep) => {
                    assert_eq!(index.compact(at), revs(keep), "{name}: compact {at}")
                }
                CompactSubs(at, keep) => {
                    let keep: HashSet<Revision> =
                        keep.iter().map(|&(m, s)| Revision::new(m, s)).collect();
                    assert_eq!(index.compact(at), keep, "{name}: compact {at}")
                }
                RestorePut(k, main, created, ver) => {
                    index.restore_put(k, rev(main), created, ver).unwrap()
                }
                RestoreTombstone(k, main) => index.restore_tombstone(k, rev(main)).unwrap(),
            }
        }
        for check in case.checks {
            match *check {
                Get(k, at, want) => {
                    let want = match want {
                        Some((m, c, v)) => Ok(KeyAt {
                            modified: rev(m),
                            created: rev(c),
                            version: v,
                        }),
                        None => Err(Error::RevisionNotFound),
                    };
                    assert_eq!(index.get(k, at), want, "{name}: get {k:?}@{at}");
                }
                GetRev(k, at, (m, s)) => {
                    let got = index.get(k, at).map(|a| a.modified);
                    assert_eq!(got, Ok(Revision::new(m, s)), "{name}: get {k:?}@{at}");
                }
                Range(s, e, at, want) => {
                    let (keys, revs) = index.range(s, e, at);
                    let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                    assert_eq!(keys, want, "{name}: range {s:?}..{e:?}@{at}");
                    assert_eq!(revs.len(), keys.len(), "{name}");
                }
                Revisions(s, e, at, limit, want, total) => {
                    let want: Vec<Revision> = want.iter().map(|&m| rev(m)).collect();
                    assert_eq!(
                        index.revisions(s, e, at, limit),
                        (want, total),
                        "{name}: revisions {s:?}..{e:?}@{at} limit {limit}"
                    );
                }
                Count(s, e, at, want) => {
                    assert_eq!(
                        index.count_revisions(s, e, at),
                        want,
                        "{name}: count {s:?}..{e:?}@{at}"
                    )
                }
                Since(s, e, since, want) => {
                    let want: Vec<Revision> =
                        want.iter().map(|&(m, s)| Revision::new(m, s)).collect();
                    assert_eq!(
                        index.range_since(s, e, since),
                        want,
                        "{name}: since {since}"
                    );
                }
                Keep(at, want) => assert_eq!(index.keep(at), revs(want), "{name}: keep {at}"),
                Len(n) => assert_eq!(index.len(), n, "{name}: len"),
            }
        }
    }
}

#[test]
fn stale_revisions_are_refused_and_change_nothing() {
    let index = Index::new();
    index.put(b"a", rev(5)).unwrap();
    let err = index.put(b"a", rev(5)).unwrap_err();
    assert_eq!(
        err,
        Error::StaleRevision {
            given: rev(5),
            latest: rev(5)
        }
    );
    assert_eq!(
        err.to_string(),
        "index: revision 5.0 is not greater than the key's latest revision 5.0"
    );
    assert!(matches!(
        index.put(b"a", rev(4)),
        Err(Error::StaleRevision { .. })
    ));
    assert!(matches!(
        index.tombstone(b"a", Revision::new(4, 9)),
        Err(Error::StaleRevision { .. })
    ));
    assert_eq!(
        index.get(b"a", 10),
        Ok(KeyAt {
            modified: rev(5),
            created: rev(5),
            version: 1
        })
    );
    assert_eq!(
        Error::RevisionNotFound.to_string(),
        "mvcc: revision not found"
    );
}

#[test]
fn index_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Index>();
    let index = std::sync::Arc::new(Index::new());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let index = index.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    index
                        .put(format!("k{t}/{i}").as_bytes(), rev(i + 1))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(index.count_revisions(b"k", b"l", 100), 400);
}
