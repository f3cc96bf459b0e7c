//! One server per database file. Two servers on one file would each keep
//! their own waiters and caches, so a `/wait` on one is never woken by a
//! write through the other; `serve` therefore holds an exclusive lock on
//! `<db>.lock` for its whole life, and a second `serve` is refused.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{SetupError, StoreError};

/// Held while the server runs; the lock goes with the process (even on
/// SIGKILL, since the kernel releases it), so a stale file never blocks a
/// restart. The file itself stays: deleting it on exit would let a third
/// server lock a new file while a second still holds the old one.
#[derive(Debug)]
pub struct ServerLock {
    _file: File,
    path: PathBuf,
}

impl ServerLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file beside `db`. The database's real path is used when it
/// exists, so a symlink or another spelling of the same file finds the
/// same lock.
pub fn lock_path(db: &Path) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = db.clone().into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock for serving `db`, or says which process holds it.
pub fn acquire(db: &Path) -> Result<ServerLock, StoreError> {
    let path = lock_path(db);
    let setup = |action: &'static str, error: std::io::Error| {
        StoreError::from(SetupError::LockFile {
            action,
            path: path.clone(),
            error,
        })
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| match path.parent() {
            Some(folder) if e.kind() == std::io::ErrorKind::NotFound => {
                SetupError::LockFolderMissing {
                    db: db.to_owned(),
                    folder: folder.to_owned(),
                }
                .into()
            }
            _ => setup("open", e),
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(SetupError::AlreadyServed {
                db: db.to_owned(),
                lock: path.clone(),
                pid: holder.trim().parse().ok(),
            }
            .into());
        }
        Err(TryLockError::Error(e)) => return Err(setup("lock", e)),
    }
    // Our pid, so the refusal above can name the holder.
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(|e| setup("write", e))?;
    Ok(ServerLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let held = acquire(&db).unwrap();
        let err = acquire(&db).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("r.db"), "{err}");
        drop(held);
        acquire(&db).expect("free again once the holder is gone");
    }
}
