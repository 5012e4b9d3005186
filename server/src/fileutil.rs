//! The data directory's permissions, as etcd's `client/pkg/fileutil`: directories are
//! created 0700 (`PrivateDirMode`) and files 0600 (`PrivateFileMode`), so other users can
//! read nothing of the data. An existing data directory with other permissions is
//! reported the way etcd 3.5's `TouchDirAll` does (a warning, "check file permission"),
//! and left as it is.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// etcd's `PrivateDirMode`.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;
/// etcd's `PrivateFileMode`.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left alone).
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Options that create a file with mode 0600 (write, create).
pub(crate) fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE);
    o
}

/// etcd's `TouchDirAll`: creates `dir` 0700 when it does not exist; when it does, warns
/// (as etcd 3.5, with its words) if its permissions are not 0700, and goes on.
pub(crate) fn touch_dir_all(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        if let Err(e) = check_dir_permission(dir) {
            tracing::warn!(error = %e, "check file permission");
        }
        return Ok(());
    }
    create_dir_all(dir)
}

/// etcd's `CheckDirPermission(dir, PrivateDirMode)`: the error etcd gives when an existing
/// directory's permissions are not 0700.
pub(crate) fn check_dir_permission(dir: &Path) -> Result<(), String> {
    let md = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    let perm = md.permissions().mode() & 0o777;
    if perm != PRIVATE_DIR_MODE {
        return Err(format!(
            "directory {:?} exist, but the permission is {:?}. The recommended permission is \
             {:?} to prevent possible unprivileged access to the data",
            dir.display().to_string(),
            go_mode_string(md.is_dir(), perm),
            go_mode_string(false, PRIVATE_DIR_MODE),
        ));
    }
    Ok(())
}

/// Go's `os.FileMode.String()` for a directory or plain file: `drwxr-xr-x`, `-rwx------`.
fn go_mode_string(is_dir: bool, perm: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if perm & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_etcds_warning() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("a/b");
        touch_dir_all(&data).unwrap();
        for d in [t.path().join("a"), data.clone()] {
            let m = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{}", d.display());
        }
        assert!(check_dir_permission(&data).is_ok());
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_dir_permission(&data).unwrap_err();
        assert_eq!(
            e,
            format!(
                "directory \"{}\" exist, but the permission is \"drwxr-xr-x\". The recommended \
                 permission is \"-rwx------\" to prevent possible unprivileged access to the data",
                data.display()
            )
        );
        // Reported, not changed.
        touch_dir_all(&data).unwrap();
        let m = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o755);
        let f = data.join("f");
        private_file().open(&f).unwrap();
        let m = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
}
