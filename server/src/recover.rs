//! Start-up and crash recovery: everything between "the process started" and "the raft loop
//! can run".
//!
//! 1. [`open_backend`]: the backend file (`member/snap/db`); the store rebuilds its index
//!    and reports the consistent index and term it was committed at, and an interrupted
//!    compaction.
//! 2. [`member`]: who this member is. A data directory without members bootstraps: a new
//!    cluster from `--initial-cluster` (etcd's member and cluster ids, configuration at
//!    index 1 of term 1), or a member added with MemberAdd joining a running cluster
//!    (`--initial-cluster-state existing`: the members come from a peer; raft's
//!    configuration from the leader's snapshot). Otherwise the member is found among the
//!    recorded ones. Raft's configuration at the consistent index is reconciled with the
//!    recorded members (a file restored from a snapshot carries its source cluster's).
//! 3. [`raft_log`]: the WAL is replayed and checked against the backend: if the log does
//!    not hold the backend's consistent index at the backend's term (the backend came from
//!    a leader's snapshot or a restored file), the backend is the snapshot and the log
//!    restarts after it, with a marker recorded in the WAL.
//! 4. A compaction the backend records as scheduled but not finished is finished before
//!    serving (`State::finish_compaction`, also used after a snapshot install).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cairn_wal::{Record, Wal};
use raft::eraftpb::ConfState;

use crate::config::Options;
use crate::error::{Error, Result};
use crate::membership::{self, ClusterInfo, MemberInfo, Membership};
use crate::mvcc::store::Recovered as Backend;
use crate::mvcc::Store;
use crate::schema::{
    applied_meta, ConfStateRecord, MemberRecord, CLUSTER, CLUSTER_ID_KEY, CLUSTER_VERSION_KEY,
    META, META_CONSISTENT_INDEX, META_TERM,
};
use crate::transport::PeerTls;

/// The data directory's paths.
pub(crate) struct Dirs {
    pub(crate) wal: PathBuf,
    pub(crate) snap: PathBuf,
}

impl Dirs {
    pub(crate) fn of(data_dir: &Path) -> Dirs {
        let member = data_dir.join("member");
        Dirs {
            wal: member.join("wal"),
            snap: member.join("snap"),
        }
    }
}

/// The opened backend, before the member is known.
pub(crate) struct Disk {
    store: Store,
    backend: Backend,
    /// A WAL existed: the member ran before, even if its backend has no members yet.
    had_wal: bool,
}

impl Disk {
    /// The member ran before (etcd's `memberInitialized`: a WAL exists).
    pub(crate) fn initialized(&self) -> bool {
        self.had_wal
    }
}

/// Opens the backend file (blocking work on a blocking thread).
pub(crate) async fn open_backend(dirs: &Dirs) -> Result<Disk> {
    let had_wal = dirs.wal.exists();
    let db_path = dirs.snap.join("db");
    let (store, backend) = tokio::task::spawn_blocking(move || Store::open(&db_path))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(Disk {
        store,
        backend,
        had_wal,
    })
}

/// A member ready to build its state from.
pub(crate) struct Recovered {
    pub(crate) store: Store,
    /// The backend's consistent index and term, and an unfinished compaction.
    pub(crate) backend: Backend,
    pub(crate) member: MemberInfo,
    pub(crate) cluster: Membership,
    /// Raft's configuration at the consistent index.
    pub(crate) conf: ConfState,
}

/// Finds (or bootstraps) this member on the opened backend; `client_urls` are the URLs it
/// advertises; `peer_tls` dials https peers when joining a running cluster.
pub(crate) async fn member(
    disk: Disk,
    opts: &Options,
    client_urls: Vec<String>,
    peer_tls: Option<&PeerTls>,
) -> Result<Recovered> {
    let Disk {
        store,
        backend,
        had_wal,
    } = disk;
    let fresh = !had_wal && Membership::load(&store.backend)?.members.is_empty();
    let (member, cluster) = if fresh {
        bootstrap(&store, opts, client_urls, peer_tls).await?
    } else {
        identify(&store, opts, client_urls)?
    };
    let backend = if fresh {
        // Bootstrapping wrote the consistent index.
        Backend {
            consistent_index: read_u64(store.backend.get_committed(META, META_CONSISTENT_INDEX)?),
            term: read_u64(store.backend.get_committed(META, META_TERM)?),
            pending_compaction: backend.pending_compaction,
        }
    } else {
        backend
    };
    let conf = conf_state(&store, &cluster, backend.consistent_index)?;
    Ok(Recovered {
        store,
        backend,
        member,
        cluster,
        conf,
    })
}

/// Raft's configuration at the consistent index. The recorded configuration must name
/// exactly the recorded members; a file restored from a snapshot keeps the source
/// cluster's configuration (etcd writes `confState` too), so it is rebuilt from the
/// members then.
fn conf_state(store: &Store, cluster: &Membership, consistent_index: u64) -> Result<ConfState> {
    let recorded = membership::load_conf_state(&store.backend)?.filter(|c| {
        let mut ids: Vec<u64> = c.voters.iter().chain(c.learners.iter()).copied().collect();
        ids.sort_unstable();
        ids == cluster.members.keys().copied().collect::<Vec<u64>>()
    });
    Ok(match recorded {
        Some(c) => c.to_raft(),
        None if consistent_index > 0 => {
            // A data directory restored from a snapshot file (or written before the
            // configuration was recorded): every member listed votes, learners learn.
            let mut c = ConfState::default();
            for m in cluster.members.values() {
                if m.is_learner {
                    c.learners.push(m.id);
                } else {
                    c.voters.push(m.id);
                }
            }
            c
        }
        // Joining an existing cluster: the leader's snapshot brings the configuration.
        None => ConfState::default(),
    })
}

/// The raft log as the WAL holds it, reconciled with the backend.
pub(crate) struct RaftLog {
    pub(crate) wal: Wal,
    /// Where the log starts: entries up to here are in the backend.
    pub(crate) snapshot_index: u64,
    pub(crate) snapshot_term: u64,
    /// Entries after `snapshot_index`, in order.
    pub(crate) entries: Vec<cairn_wal::Entry>,
    pub(crate) hard_state: Option<cairn_wal::HardState>,
    /// The backend's consistent index: entries after it are applied again.
    pub(crate) applied: u64,
    /// The term of the entry at `applied`.
    pub(crate) applied_term: u64,
    /// Raft's configuration at `applied`.
    pub(crate) conf: ConfState,
}

/// Opens and replays the WAL (blocking), and checks it against the backend.
pub(crate) fn raft_log(dirs: &Dirs, backend: &Backend, conf: ConfState) -> Result<RaftLog> {
    crate::fileutil::create_dir_all(&dirs.wal)
        .map_err(|e| Error::Internal(format!("create {}: {e}", dirs.wal.display())))?;
    crate::fileutil::create_dir_all(&dirs.snap)
        .map_err(|e| Error::Internal(format!("create {}: {e}", dirs.snap.display())))?;
    // The raft loop is the WAL's only appender, one batch at a time: measured on this
    // workload, pwritev + fdatasync answers a single client sooner than the io_uring
    // submission (1303 vs 825 puts/s, one client), so it is the server's default.
    // CAIRN_WAL_BACKEND=io_uring|auto|pwritev chooses.
    let choice = match std::env::var("CAIRN_WAL_BACKEND").as_deref() {
        Ok("io_uring") => cairn_wal::BackendChoice::IoUring,
        Ok("auto") => cairn_wal::BackendChoice::Auto,
        _ => cairn_wal::BackendChoice::Pwritev,
    };
    let wal_opts = cairn_wal::Options {
        backend: choice,
        ..Default::default()
    };
    let (wal, replay) = Wal::open(&dirs.wal, wal_opts)?;
    tracing::info!(backend = ?wal.backend(), "WAL opened");
    let ci = backend.consistent_index;
    let (mut snap_index, mut snap_term) = replay
        .snapshot
        .as_ref()
        .map(|m| (m.index, m.term))
        .unwrap_or((0, 0));
    let mut entries: Vec<cairn_wal::Entry> = replay
        .entries
        .into_iter()
        .filter(|e| e.index > snap_index)
        .collect();
    // Does the log agree with the backend at the consistent index? (Same index and term
    // means the same history up to there.) When it does not — the backend was installed
    // from a leader's snapshot or restored from a file — the backend is the snapshot and
    // the log restarts after it.
    let log_term_at_ci = if ci == snap_index {
        Some(snap_term)
    } else {
        entries.iter().find(|e| e.index == ci).map(|e| e.term)
    };
    let consistent = ci == 0
        || log_term_at_ci == Some(backend.term)
        || (backend.term == 0 && log_term_at_ci.is_some());
    if !consistent {
        let dropped = entries.len();
        snap_index = ci;
        snap_term = backend.term.max(1);
        entries.clear();
        wal.append_blocking(vec![Record::Snapshot(cairn_wal::SnapshotMarker {
            index: snap_index,
            term: snap_term,
        })])?;
        tracing::info!(
            index = snap_index,
            term = snap_term,
            dropped_entries = dropped,
            "raft log restarts at the backend's index"
        );
    }
    Ok(RaftLog {
        wal,
        snapshot_index: snap_index,
        snapshot_term: snap_term,
        entries,
        hard_state: replay.hard_state,
        applied: ci,
        applied_term: backend.term,
        conf,
    })
}

fn read_u64(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|v| {
        v.get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    })
    .unwrap_or(0)
}

/// The members of `--initial-cluster` (this member alone when it is empty), with etcd's
/// ids.
fn initial_members(opts: &Options) -> Vec<MemberRecord> {
    let mut pairs = opts.initial_cluster.clone();
    if pairs.is_empty() {
        for u in &opts.initial_advertise_peer_urls {
            pairs.push((opts.name.clone(), u.clone()));
        }
    }
    let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
    for (n, u) in pairs {
        match by_name.iter_mut().find(|(bn, _)| *bn == n) {
            Some((_, urls)) => urls.push(u),
            None => by_name.push((n, vec![u])),
        }
    }
    by_name
        .into_iter()
        .map(|(name, peer_urls)| MemberRecord {
            id: membership::member_id(&peer_urls, &opts.initial_cluster_token),
            peer_urls,
            is_learner: false,
            name,
            client_urls: Vec::new(),
        })
        .collect()
}

/// A member with no data yet: a new cluster from `--initial-cluster`, or a member added
/// with MemberAdd joining a running one (`--initial-cluster-state existing`).
async fn bootstrap(
    store: &Store,
    opts: &Options,
    client_urls: Vec<String>,
    peer_tls: Option<&PeerTls>,
) -> Result<(MemberInfo, Membership)> {
    let be = &store.backend;
    let mut cluster = Membership::default();
    let (id, cluster_id) = if opts.initial_cluster_existing {
        let mine = &opts.initial_advertise_peer_urls;
        let others: Vec<String> = initial_members(opts)
            .into_iter()
            .filter(|m| !m.peer_urls.iter().any(|u| mine.contains(u)))
            .flat_map(|m| m.peer_urls)
            .collect();
        if others.is_empty() {
            return Err(Error::Internal(
                "--initial-cluster-state=existing needs the other members in --initial-cluster"
                    .into(),
            ));
        }
        let bytes =
            crate::transport::fetch_members(&others, mine, peer_tls, Duration::from_secs(5))
                .await
                .map_err(|e| {
                    Error::Internal(format!(
                        "cannot fetch cluster info from peer urls {}: {e}",
                        others.join(",")
                    ))
                })?;
        let info: ClusterInfo = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("bad cluster info from peers: {e}")))?;
        for m in info.members {
            cluster.put(be, m);
        }
        let me = cluster.by_peer_url(mine).map(|m| m.id).ok_or_else(|| {
            Error::Internal(format!(
                "error validating peerURLs: this member's peer URLs {} are not in the cluster \
                 (add it with `etcdctl member add` first)",
                mine.join(",")
            ))
        })?;
        // Record our own name and URLs; the cluster learns them when we publish.
        tracing::info!(member_id = %format!("{me:x}"), "joining an existing cluster");
        (me, info.cluster_id)
    } else {
        let members = initial_members(opts);
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let me = membership::member_id(
            &opts.initial_advertise_peer_urls,
            &opts.initial_cluster_token,
        );
        if !ids.contains(&me) {
            return Err(Error::Internal(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                opts.name
            )));
        }
        // Client URLs become known to the cluster when each member publishes them.
        for m in members {
            cluster.put(be, m);
        }
        membership::stage_conf_state(
            be,
            &ConfStateRecord {
                voters: {
                    let mut v = ids.clone();
                    v.sort_unstable();
                    v
                },
                learners: Vec::new(),
            },
        );
        be.put(
            CLUSTER,
            Bytes::from_static(CLUSTER_VERSION_KEY),
            Bytes::from_static(crate::status::CLUSTER_VERSION.as_bytes()),
        );
        (me, membership::cluster_id(&ids))
    };
    be.put(
        CLUSTER,
        Bytes::from_static(CLUSTER_ID_KEY),
        Bytes::copy_from_slice(&cluster_id.to_be_bytes()),
    );
    // A new cluster starts with its configuration applied at index 1 of term 1 (every
    // member the same); a joiner starts empty and receives the leader's snapshot.
    let ci: u64 = if opts.initial_cluster_existing { 0 } else { 1 };
    be.commit(&applied_meta(ci, ci))?;
    let info = MemberInfo {
        id,
        cluster_id,
        name: opts.name.clone(),
        client_urls,
    };
    Ok((info, cluster))
}

/// A restarting member: who it is, from the recorded members (matched by peer URLs, then
/// by name).
fn identify(
    store: &Store,
    opts: &Options,
    client_urls: Vec<String>,
) -> Result<(MemberInfo, Membership)> {
    let cluster = Membership::load(&store.backend)?;
    let derived = membership::member_id(
        &opts.initial_advertise_peer_urls,
        &opts.initial_cluster_token,
    );
    let id = if cluster.members.contains_key(&derived) {
        derived
    } else if let Some(m) = cluster.by_peer_url(&opts.initial_advertise_peer_urls) {
        m.id
    } else if let Some(m) = cluster.members.values().find(|m| m.name == opts.name) {
        m.id
    } else if cluster.members.len() == 1 {
        *cluster.members.keys().next().expect("one member")
    } else {
        return Err(Error::Internal(format!(
            "cannot tell which member this is: peer URLs {} and name {:?} match none of the {} recorded members",
            opts.initial_advertise_peer_urls.join(","),
            opts.name,
            cluster.members.len()
        )));
    };
    let ids: Vec<u64> = cluster.members.keys().copied().collect();
    let cluster_id = match store.backend.get_committed(CLUSTER, CLUSTER_ID_KEY)? {
        Some(v) if v.len() == 8 => read_u64(Some(v)),
        _ => membership::cluster_id(&ids),
    };
    let info = MemberInfo {
        id,
        cluster_id,
        name: opts.name.clone(),
        client_urls,
    };
    Ok((info, cluster))
}
