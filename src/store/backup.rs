//! Consistent copies of the database and putting one back.
//!
//! - [`backup_to`] writes a copy with SQLite's `VACUUM INTO` from its own read-only connection:
//!   one read transaction, so the copy is a consistent snapshot even while the daemon writes,
//!   and a self-contained file (no `-wal` beside it). `pasarela backup` and `GET /api/backup`.
//! - [`restore_from`] replaces the database with a copy (`pasarela restore`). It refuses while
//!   any pasarela process has the database open: every [`Store`](super::Store) and every backup
//!   holds a shared `flock` on `pasarela.lock` in the state directory, and a restore needs it
//!   exclusively. The lock goes with the process, so a crashed daemon never blocks a restore.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{DB_FILE, StoreError, schema};

/// File in the state directory that every user of the database locks (shared); a restore
/// locks it exclusively.
pub const LOCK_FILE: &str = "pasarela.lock";

/// A held lock on [`LOCK_FILE`]; released when dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

fn lock_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
    }
}

/// Takes the state directory's lock: shared (a user of the database) or exclusive (a restore).
/// `Ok(None)` when `exclusive` and someone else holds it.
pub fn lock_state_dir(state_dir: &Path, exclusive: bool) -> Result<Option<DbLock>, StoreError> {
    let path = state_dir.join(LOCK_FILE);
    // A lock file another user created (root running `pasarela backup`) is still lockable
    // through a read-only descriptor.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .or_else(|_| File::open(&path))
        .map_err(|e| lock_error(&path, e))?;
    let op = if exclusive {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
        let e = std::io::Error::last_os_error();
        if exclusive && e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        return Err(lock_error(&path, e));
    }
    Ok(Some(DbLock { _file: file }))
}

/// Writes a consistent copy of the database `db` to `dest`, which must not exist. Returns its
/// size in bytes. Safe while the daemon runs: only reads, in one transaction.
pub fn backup_to(db: &Path, dest: &Path) -> Result<u64, StoreError> {
    if dest.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists; choose a new file name",
            dest.display()
        )));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: db.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = dest
        .to_str()
        .ok_or_else(|| StoreError::Conflict(format!("{} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    let file = File::open(dest).map_err(|e| lock_error(dest, e))?;
    file.sync_all().map_err(|e| lock_error(dest, e))?;
    Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Where the database that was replaced now lives (`None` if there was none).
    pub previous: Option<PathBuf>,
    /// Schema version of the restored copy (migrations run when the daemon starts).
    pub schema_version: i64,
}

/// Checks that `path` is a pasarela database this version can open.
fn check_copy(path: &Path) -> Result<i64, StoreError> {
    let bad = |why: String| StoreError::Conflict(format!("{}: {why}", path.display()));
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            StoreError::Open {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| bad(format!("not a readable SQLite database ({e})")))?;
    if check != "ok" {
        return Err(bad(format!("the database is damaged ({check})")));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = schema::MIGRATIONS.len() as i64;
    let has_messages: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages')",
        [],
        |r| r.get(0),
    )?;
    if version < 1 || !has_messages {
        return Err(bad("not a pasarela database (no message table)".into()));
    }
    if version > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    Ok(version)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| lock_error(path, e)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Replaces the database in `state_dir` with the copy at `source`. Refuses (and changes
/// nothing) while anything holds the database open, or when the copy is not a database this
/// version can open. The replaced database is kept beside it as
/// `pasarela.db.before-restore-<unix seconds>`. When run as root, the restored file gets the
/// owner of the state directory (the service user), so the daemon can write it.
/// Drops the keyed-state values tied to one life of the database (see
/// [`crate::transport::sink::KeyedState`]): ids drawn after the backup was taken may already be
/// known to a phone, so the restored database must draw a new tag.
fn forget_instance_keys(db: &Path) -> Result<(), StoreError> {
    let conn = Connection::open(db).map_err(|source| StoreError::Open {
        path: db.to_path_buf(),
        source,
    })?;
    conn.execute(
        "DELETE FROM meta WHERE substr(key, -length(?1)) = ?1",
        [crate::transport::sink::INSTANCE_KEY_SUFFIX],
    )?;
    Ok(())
}

pub fn restore_from(state_dir: &Path, source: &Path) -> Result<Restored, StoreError> {
    let schema_version = check_copy(source)?;
    let Some(_lock) = lock_state_dir(state_dir, true)? else {
        return Err(StoreError::Conflict(format!(
            "the database in {} is in use: the daemon (or a backup) is running; stop it first \
             (systemctl stop pasarela), then restore",
            state_dir.display()
        )));
    };
    let db = state_dir.join(DB_FILE);
    let incoming = state_dir.join(format!("{DB_FILE}.restoring"));
    if incoming.exists() {
        std::fs::remove_file(&incoming).map_err(io(&incoming))?;
    }
    // A clean, self-contained copy first: if this fails, nothing has changed.
    backup_to(source, &incoming)?;
    forget_instance_keys(&incoming)?;
    let owner = std::fs::metadata(state_dir).map_err(io(state_dir))?;
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(incoming.as_os_str().as_encoded_bytes())
                .map_err(|e| StoreError::Conflict(e.to_string()))?;
            // SAFETY: a valid NUL-terminated path; ids from the directory's metadata.
            if unsafe { libc::chown(c.as_ptr(), owner.uid(), owner.gid()) } != 0 {
                return Err(io(&incoming)(std::io::Error::last_os_error()));
            }
        }
    }
    let mut previous = None;
    if db.exists() {
        // Fold any write-ahead log into the old file, so the kept copy is complete and no old
        // `-wal` can be replayed onto the restored database.
        {
            let conn = Connection::open(&db).map_err(|source| StoreError::Open {
                path: db.clone(),
                source,
            })?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        let kept = state_dir.join(format!(
            "{DB_FILE}.before-restore-{}",
            super::now_ms() / 1000
        ));
        std::fs::rename(&db, &kept).map_err(io(&db))?;
        previous = Some(kept);
    }
    for suffix in ["-wal", "-shm"] {
        let side = state_dir.join(format!("{DB_FILE}{suffix}"));
        if side.exists() {
            std::fs::remove_file(&side).map_err(io(&side))?;
        }
    }
    std::fs::rename(&incoming, &db).map_err(io(&incoming))?;
    sync_dir(state_dir)?;
    Ok(Restored {
        previous,
        schema_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Channel, NewOutbound, Priority, Store};

    async fn store_with(dir: &Path, n: usize) -> Store {
        let store = Store::open(dir).unwrap();
        let items: Vec<NewOutbound> = (0..n)
            .map(|i| NewOutbound {
                channel: Channel::Sms,
                peer: "+5491123456789".into(),
                body: format!("aviso {i}"),
                priority: Priority::Bulk,
                customer_id: None,
                window: None,
                not_before: None,
            })
            .collect();
        store
            .write(move |c| crate::store::messages::insert_outbound(c, &items, 1))
            .await
            .unwrap();
        store
    }

    fn count(db: &Path) -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_backup_is_a_consistent_copy_while_the_daemon_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 100).await;
        // Writes keep coming while the copy is made.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    store
                        .write(|c| {
                            crate::store::messages::insert_outbound(
                                c,
                                &[NewOutbound {
                                    channel: Channel::Sms,
                                    peer: "+5491123456780".into(),
                                    body: "más".into(),
                                    priority: Priority::Bulk,
                                    customer_id: None,
                                    window: None,
                                    not_before: None,
                                }],
                                2,
                            )
                        })
                        .await
                        .unwrap();
                }
            })
        };
        let dest = dir.path().join("copia.db");
        let (db, d2) = (store.path().to_path_buf(), dest.clone());
        let size = tokio::task::spawn_blocking(move || backup_to(&db, &d2))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        assert!(size > 0);
        let copied = count(&dest);
        assert!((100..=120).contains(&copied), "{copied}");
        assert_eq!(check_copy(&dest).unwrap(), schema::MIGRATIONS.len() as i64);
        // An existing file is never overwritten.
        let e = backup_to(store.path(), &dest).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[tokio::test]
    async fn restore_refuses_while_the_database_is_open_and_then_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let other = dir.path().join("other");
        let copy = dir.path().join("copia.db");
        // The copy to restore: 3 messages. The live database: 5.
        {
            let s = store_with(&other, 3).await;
            // An Android route's id tag, and a per-route value that must survive.
            use crate::transport::sink::KeyedState;
            KeyedState::set(&s, "android_id_tag", Some(0xabcdef))
                .await
                .unwrap();
            KeyedState::set(&s, "android_inbox_cursor:phone1", Some(42))
                .await
                .unwrap();
            backup_to(s.path(), &copy).unwrap();
        }
        let store = store_with(&state, 5).await;
        let e = restore_from(&state, &copy).unwrap_err();
        assert!(e.to_string().contains("is in use"), "{e}");
        assert_eq!(count(&state.join(DB_FILE)), 5, "nothing changed");
        // A file that is not a pasarela database is refused before anything else.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not a database at all").unwrap();
        assert!(restore_from(&state, &junk).is_err());
        store.close().await;
        drop(store);
        let done = restore_from(&state, &copy).unwrap();
        assert_eq!(count(&state.join(DB_FILE)), 3);
        let previous = done.previous.unwrap();
        assert_eq!(count(&previous), 5, "the replaced database is kept");
        assert!(!state.join(format!("{DB_FILE}-wal")).exists());
        // The daemon opens the restored database.
        let reopened = Store::open(&state).unwrap();
        assert_eq!(count(reopened.path()), 3);
        // Ids drawn after the backup may be known to a phone: the restored database draws a
        // new id tag, and keeps the rest of the keyed state.
        use crate::transport::sink::KeyedState;
        assert_eq!(
            KeyedState::get(&reopened, "android_id_tag").await.unwrap(),
            None
        );
        assert_eq!(
            KeyedState::get(&reopened, "android_inbox_cursor:phone1")
                .await
                .unwrap(),
            Some(42)
        );
    }
}
