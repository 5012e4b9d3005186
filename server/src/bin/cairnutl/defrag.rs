//! `cairnutl defrag --data-dir DIR`: rewrites a stopped member's backend file without its
//! free pages, like `etcdutl defrag`. The compacted copy is written next to the file, synced,
//! and renamed over it, so a crash leaves either the old or the new file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use cairn_engine::{Db, Options};

/// Returns the backend file's size before and after.
pub fn defrag(data_dir: &Path) -> Result<(u64, u64), String> {
    let snap_dir = data_dir.join("member").join("snap");
    let db_path = snap_dir.join("db");
    if !db_path.is_file() {
        return Err(format!("{} does not exist", db_path.display()));
    }
    let tmp: PathBuf = snap_dir.join("db.defrag");
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(|e| format!("remove {}: {e}", tmp.display()))?;
    }
    let before;
    {
        // Opening takes the file lock: a running member makes this fail.
        let db = Db::open(&db_path, Options::default())
            .map_err(|e| format!("{}: {e}", db_path.display()))?;
        before = db.size();
        if let Err(e) = db.compact_into(&tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(format!("defragment {}: {e}", db_path.display()));
        }
    }
    let sync = |p: &Path| File::open(p).and_then(|f| f.sync_all());
    sync(&tmp).map_err(|e| format!("sync {}: {e}", tmp.display()))?;
    fs::rename(&tmp, &db_path).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    sync(&snap_dir).map_err(|e| format!("sync {}: {e}", snap_dir.display()))?;
    let after = fs::metadata(&db_path)
        .map_err(|e| format!("stat {}: {e}", db_path.display()))?
        .len();
    Ok((before, after))
}
