//! A full disk, a read-only file system, a corrupt database and a locked one
//! each name themselves (kind and message), on start-up and on a write;
//! before, all four read "SQLite database busy or unreachable".
//!
//! The file-system cases use a real small tmpfs, mounted by the test (the
//! test machines run as root; a failed mount fails the test, it is never
//! skipped).

use std::path::{Path, PathBuf};
use std::process::Command;

use carewatch_core::Error;
use carewatch_core::auth::TokenHash;
use carewatch_core::ids::ResellerId;
use carewatch_core::store::{Reseller, Store};
use carewatch_core::time::Timestamp;
use carewatch_storage_sqlite::SqliteStore;

/// A tmpfs of `size`, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir.path(),
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        run("mount", &["-o", "remount,ro"], self.path());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn run(program: &str, args: &[&str], target: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(target)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        status.success(),
        "{program} {args:?} {} failed: this test needs root to mount a small tmpfs",
        target.display()
    );
}

fn reseller(n: usize) -> Reseller {
    Reseller {
        id: ResellerId::new(&format!("reseller-{n}")).expect("id"),
        name: "x".repeat(2000),
        created_at: Timestamp::from_millis(1),
    }
}

/// Writes until the store refuses; returns the refusal.
async fn write_until_refused(store: &SqliteStore) -> Error {
    for n in 0..100_000 {
        if let Err(e) = store
            .create_reseller(
                &reseller(n),
                &TokenHash::from_slice(&[7; 32]).expect("hash"),
            )
            .await
        {
            return e;
        }
    }
    panic!("100,000 writes fitted in the small file system");
}

fn assert_names(error: &Error, code: &str, words: &str) {
    assert_eq!(error.code(), code, "{error}");
    assert!(
        error.to_string().contains(words),
        "the message must say {words:?}: {error}"
    );
}

#[tokio::test]
async fn a_full_disk_is_named_on_write_and_on_start_up() {
    let fs = SmallFs::mount("600k");
    let db = fs.path().join("carewatch.db");
    let store = SqliteStore::open(&db)
        .await
        .expect("opens while there is room");
    let refused = write_until_refused(&store).await;
    assert_names(&refused, "storage_full", "no space left");
    assert!(refused.is_retryable());
    drop(store);

    // Fill what is left, then start again: migrations and WAL need room.
    let filler = fs.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);
    let fresh = fs.path().join("other.db");
    let err = SqliteStore::open(&fresh)
        .await
        .expect_err("no room to create a database");
    assert_names(&err, "storage_full", "no space left");
    assert!(
        err.to_string().contains("other.db"),
        "names the file: {err}"
    );
}

/// On start-up only: Linux will not make a file system read-only while the
/// store holds its files open for writing. (A write refused with
/// SQLITE_READONLY is mapped the same way; `codec`'s unit test covers it.)
#[tokio::test]
async fn a_read_only_file_system_is_named_on_start_up() {
    let fs = SmallFs::mount("4m");
    let db = fs.path().join("carewatch.db");
    let store = SqliteStore::open(&db).await.expect("opens");
    store
        .create_reseller(
            &reseller(1),
            &TokenHash::from_slice(&[7; 32]).expect("hash"),
        )
        .await
        .expect("writes while writable");
    drop(store);
    fs.remount_read_only();
    let err = SqliteStore::open(&db)
        .await
        .expect_err("cannot start read-only");
    assert_names(&err, "storage_read_only", "read-only");
    assert!(
        err.to_string().contains("carewatch.db"),
        "names the file: {err}"
    );
}

#[tokio::test]
async fn a_corrupt_database_is_named_on_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let db: PathBuf = dir.path().join("carewatch.db");
    std::fs::write(&db, "this is not a SQLite database\n".repeat(200)).expect("garbage");
    let err = SqliteStore::open(&db)
        .await
        .expect_err("garbage does not open");
    assert_names(&err, "storage_corrupt", "corrupt or not a database");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_locked_database_is_named_on_write() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("carewatch.db");
    let store = SqliteStore::open(&db).await.expect("opens");
    // Another process's exclusive transaction, held past the busy timeout.
    let other = rusqlite::Connection::open(&db).expect("second connection");
    other
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("exclusive lock");
    let err = store
        .create_reseller(
            &reseller(1),
            &TokenHash::from_slice(&[7; 32]).expect("hash"),
        )
        .await
        .expect_err("locked");
    assert_names(&err, "storage_locked", "locked by another process");
    other.execute_batch("ROLLBACK").expect("release");
    store
        .create_reseller(
            &reseller(1),
            &TokenHash::from_slice(&[7; 32]).expect("hash"),
        )
        .await
        .expect("writes once the lock is gone");
}
