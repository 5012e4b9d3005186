//! `cairnutl snapshot restore`: a data directory from a snapshot file (Cairn's or etcd's).
//!
//! The steps follow `etcdutl snapshot restore` (3.5):
//! 1. the member list comes from `--initial-cluster` and must contain `--name` with exactly
//!    the `--initial-advertise-peer-urls` (etcd's bootstrap check);
//! 2. the target data directory must not exist or be empty;
//! 3. the file is copied to `<data-dir>/member/snap/db`; a SHA-256 trailer is present when
//!    `size % 512 == 32` (what the Snapshot RPC appends): it is cut off and checked unless
//!    `--skip-hash-check`; a file without one needs `--skip-hash-check` (a copied `db`);
//! 4. the bbolt file is checked for consistency, the `members` and `members_removed` buckets
//!    are emptied and the new members written (ids derived from peer URLs and the cluster
//!    token, as etcd does), and the consistent index becomes the number of members with
//!    term 1 — the raft index etcd's restore gives the new cluster's first entries.
//!
//! Cairn's own WAL is not written here: a member that finds a backend ahead of its (empty)
//! log starts its raft log at the backend's consistent index.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cairn_engine::{Db, Options};
use cairn_server::config::{self, Invocation};
use cairn_server::membership::member_id;
use cairn_server::schema::{
    member_key, MemberRecord, MEMBERS, MEMBERS_REMOVED, META, META_CONSISTENT_INDEX, META_TERM,
};
use sha2::Digest as _;
use sha2::Sha256;

const SHA256_LEN: u64 = 32;

/// What `snapshot restore` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub initial_cluster: Option<String>,
    pub initial_cluster_token: Option<String>,
    pub initial_advertise_peer_urls: Option<String>,
    pub skip_hash_check: bool,
}

/// The restored members, in `--initial-cluster` order of first appearance, after etcd's
/// bootstrap checks.
pub fn members(o: &RestoreOptions) -> Result<(String, Vec<MemberRecord>), String> {
    // Reuse the server's flag parser and its checks: the flags mean the same thing there.
    let mut args = Vec::new();
    if let Some(n) = &o.name {
        args.push(format!("--name={n}"));
    }
    if let Some(c) = &o.initial_cluster {
        args.push(format!("--initial-cluster={c}"));
    }
    if let Some(t) = &o.initial_cluster_token {
        args.push(format!("--initial-cluster-token={t}"));
    }
    if let Some(u) = &o.initial_advertise_peer_urls {
        args.push(format!("--initial-advertise-peer-urls={u}"));
    }
    let parsed = config::parse(&args, &[], |_| Err(io::Error::other("no config file")))
        .map_err(|e| e.to_string())?;
    let Invocation::Run(cfg) = parsed.invocation else {
        return Err("unexpected flags".into());
    };
    cfg.verify_bootstrap().map_err(|e| e.to_string())?;
    let mut out: Vec<MemberRecord> = Vec::new();
    for (name, _) in &cfg.initial_cluster {
        if out.iter().any(|m| &m.name == name) {
            continue;
        }
        let peer_urls: Vec<String> = cfg
            .initial_cluster_urls_of(name)
            .iter()
            .map(|u| u.to_string())
            .collect();
        out.push(MemberRecord {
            id: member_id(&peer_urls, &cfg.initial_cluster_token),
            peer_urls,
            is_learner: false,
            name: name.clone(),
            client_urls: Vec::new(),
        });
    }
    Ok((cfg.name.clone(), out))
}

fn io_err(what: &str, path: &Path, e: io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Copies `src` to `dst` without its SHA-256 trailer, verifying it unless `skip`.
/// Returns whether the file had a trailer.
pub fn copy_and_verify(src: &Path, dst: &Path, skip: bool) -> Result<bool, String> {
    let mut f = File::open(src).map_err(|e| io_err("open", src, e))?;
    let len = f.metadata().map_err(|e| io_err("stat", src, e))?.len();
    let has_hash = len % 512 == SHA256_LEN;
    if !has_hash && !skip {
        return Err("snapshot missing hash but --skip-hash-check=false".into());
    }
    let body_len = if has_hash { len - SHA256_LEN } else { len };
    // etcd's PrivateFileMode.
    let mut out = std::os::unix::fs::OpenOptionsExt::mode(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(dst)
    .map_err(|e| io_err("create", dst, e))?;
    let mut hasher = Sha256::new();
    let mut remaining = body_len;
    let mut buf = vec![0u8; 1 << 20];
    while remaining > 0 {
        let n = (buf.len() as u64).min(remaining) as usize;
        f.read_exact(&mut buf[..n])
            .map_err(|e| io_err("read", src, e))?;
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| io_err("write", dst, e))?;
        remaining -= n as u64;
    }
    if has_hash && !skip {
        let mut want = [0u8; SHA256_LEN as usize];
        f.read_exact(&mut want)
            .map_err(|e| io_err("read", src, e))?;
        let got: [u8; 32] = hasher.finalize().into();
        if got != want {
            return Err(format!("expected sha256 {want:?}, got {got:?}"));
        }
    }
    out.sync_all().map_err(|e| io_err("sync", dst, e))?;
    Ok(has_hash)
}

/// Rewrites membership and the consistent index of a restored backend file.
pub fn rewrite_backend(db_path: &Path, members: &[MemberRecord]) -> Result<(), String> {
    let db = Db::open(db_path, Options::default())
        .map_err(|e| format!("{} is not a usable bbolt file: {e}", db_path.display()))?;
    crate::status::integrity_check(&db)?;
    let engine = |e: cairn_engine::Error| format!("{}: {e}", db_path.display());
    let mut tx = db.begin_write().map_err(engine)?;
    for bucket in [MEMBERS, MEMBERS_REMOVED] {
        let mut b = tx.create_bucket_if_not_exists(bucket).map_err(engine)?;
        let mut keys = Vec::new();
        {
            let mut c = b.cursor();
            let mut next = c.first();
            while let Some((k, _)) = next {
                keys.push(k.to_vec());
                next = c.next();
            }
        }
        for k in keys {
            b.delete(&k).map_err(engine)?;
        }
    }
    {
        let mut b = tx.bucket_mut(MEMBERS).map_err(engine)?;
        for m in members {
            // etcd's member JSON: `id`, `peerURLs` and `name` for a restored member.
            b.put(member_key(m.id).as_bytes(), &m.to_json())
                .map_err(engine)?;
        }
    }
    {
        let mut meta = tx.create_bucket_if_not_exists(META).map_err(engine)?;
        let commit = members.len() as u64;
        meta.put(META_CONSISTENT_INDEX, &commit.to_be_bytes())
            .map_err(engine)?;
        meta.put(META_TERM, &1u64.to_be_bytes()).map_err(engine)?;
    }
    tx.commit().map_err(engine)?;
    Ok(())
}

/// Runs the whole restore; returns the data directory made.
pub fn restore(o: &RestoreOptions) -> Result<PathBuf, String> {
    let (name, members) = members(o)?;
    let data_dir = o
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
    if data_dir.exists() {
        let empty = fs::read_dir(&data_dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(format!(
                "data-dir {:?} not empty or could not be read",
                data_dir.display().to_string()
            ));
        }
    }
    let snap_dir = data_dir.join("member").join("snap");
    // etcd's PrivateDirMode for the data directory and everything under it.
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(&snap_dir)
        .map_err(|e| io_err("create", &snap_dir, e))?;
    let db_path = snap_dir.join("db");
    let part = snap_dir.join("db.part");
    let result = copy_and_verify(&o.snapshot, &part, o.skip_hash_check)
        .and_then(|_| rewrite_backend(&part, &members))
        .and_then(|_| fs::rename(&part, &db_path).map_err(|e| io_err("rename", &part, e)));
    if let Err(e) = result {
        // Leave no half-made data directory behind.
        let _ = fs::remove_dir_all(data_dir.join("member"));
        return Err(e);
    }
    Ok(data_dir)
}
