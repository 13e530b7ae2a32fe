//! The master key's file: read if it exists, created (readable by the owner
//! only) if not. Every front end keeps it the same way, so a database made by
//! `carewatch serve` opens from Python with the same key.

use std::io::Write;
use std::path::Path;

use super::MasterKey;
use crate::error::{Error, Result};

/// The file name beside a SQLite database or in a data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Whether [`load_or_create`] read an existing key or made a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The file existed.
    Loaded,
    /// The file was created with a new random key: back it up.
    Created,
}

/// Loads the master key in `path`, or creates the file with a new random key.
/// Never overwrites: of two processes creating it at once, one wins and the
/// other reads the winner's key.
pub fn load_or_create(path: &Path) -> Result<(MasterKey, KeySource)> {
    remove_leftovers(path);
    // Read first: an existing key needs nothing written (the directory may
    // be read-only, e.g. a secret mounted as the data directory).
    match std::fs::read_to_string(path) {
        Ok(_) => return Ok((load(path)?, KeySource::Loaded)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(path, "cannot read", e)),
    }
    let key = MasterKey::generate();
    match create_private(path, key.to_hex().as_bytes()) {
        Ok(()) => Ok((key, KeySource::Created)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((load(path)?, KeySource::Loaded))
        }
        Err(e) => Err(file_error(path, "cannot create", e)),
    }
}

/// Loads the master key in `path`, warning if every user may read it (a
/// copy made with a 0022 umask): it opens every secret.
pub fn load(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, "cannot read", e))?;
    if let Some(mode) = readable_by_others(path) {
        tracing::warn!(
            file = %path.display(),
            mode = %format!("{mode:o}"),
            "every user of the machine may read the master key file: make it the service user's (chmod 600)"
        );
    }
    MasterKey::from_hex(text.trim()).map_err(|e| Error::InvalidInput {
        field: "master key file",
        reason: format!("{}: {e}", path.display()),
    })
}

/// The file's permission bits when every user of the machine may read or
/// write it; `None` otherwise (a group of its own, as Kubernetes' fsGroup
/// gives, is the operator's choice), or where there are no such bits.
fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o006 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A creation in flight takes milliseconds; a temporary file this old was
/// left by a process killed between linking it into place and removing it.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temporary files of [`create_private`] that a killed process
/// left beside `path`: each is a second, hidden copy of a key (it would
/// outlive a rotation and go into backups of the directory). Best effort:
/// the directory may be read-only (a mounted secret).
fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > LEFTOVER_AGE);
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates `path` with `contents` whole or not at all: written and synced
/// under a temporary name first, then linked into place, which fails if
/// the file exists. A crash mid-write (kill -9 on first start) would
/// otherwise leave an empty key file that every later start refuses.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "key".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        MasterKey::generate().fingerprint()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
        // A file system without hard links (vfat, some network shares):
        // created in place, as before (not crash-safe there).
        Err(_) => {
            let mut file = options.open(path)?;
            file.write_all(contents)?;
            file.sync_all()?;
        }
    }
    // The new name itself survives a crash once the directory is synced.
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn file_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::storage(format!("{what} master key file {}", path.display()), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by review: a 0644 key file loaded without a word, where the
    /// README says it is the service user's. A group of its own (0640) is
    /// the operator's choice.
    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_told_apart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(MASTER_KEY_FILE);
        let (_, source) = load_or_create(&path).expect("created");
        assert_eq!(source, KeySource::Created);
        assert_eq!(
            readable_by_others(&path),
            None,
            "created for its owner only"
        );
        for (mode, exposed) in [(0o644, true), (0o604, true), (0o640, false), (0o600, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(
                readable_by_others(&path),
                exposed.then_some(mode),
                "{mode:o}"
            );
            load(&path).expect("still loads: a warning, not a refusal");
        }
    }

    /// Found by review: a kill between linking the temporary file into
    /// place and removing it left a hidden copy of the key for good.
    #[test]
    fn copies_a_killed_creation_left_behind_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        load_or_create(&path).unwrap();
        let left = dir.path().join(".master.key.4242-0123abcd.tmp");
        let in_flight = dir.path().join(".master.key.4343-4567ef01.tmp");
        let unrelated = dir.path().join(".other.key.4242-0123abcd.tmp");
        for file in [&left, &in_flight, &unrelated] {
            std::fs::write(file, "00").unwrap();
        }
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for file in [&left, &unrelated] {
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
        load_or_create(&path).unwrap();
        assert!(!left.exists(), "a leftover copy is removed");
        assert!(in_flight.exists(), "a creation in flight is left alone");
        assert!(unrelated.exists(), "another file's is not ours");
    }

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let (created, source) = load_or_create(&path).unwrap();
        assert_eq!(source, KeySource::Created);
        let (loaded, source) = load_or_create(&path).unwrap();
        assert_eq!(source, KeySource::Loaded);
        assert_eq!(*created.to_hex(), *loaded.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn creating_leaves_no_temporary_file_and_never_replaces_one_made_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let (first, _) = load_or_create(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [MASTER_KEY_FILE], "only the key file is left");
        assert_eq!(
            create_private(&path, b"another").unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        assert_eq!(*load(&path).unwrap().to_hex(), *first.to_hex());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_existing_key_is_read_without_writing_anything() {
        // A read-only data directory (a mounted secret) must still load.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let (created, _) = load_or_create(&path).unwrap();
        let before = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (loaded, source) = load_or_create(&path).unwrap();
        assert_eq!(source, KeySource::Loaded);
        assert_eq!(*loaded.to_hex(), *created.to_hex());
        let after = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
        assert_eq!(before, after, "loading wrote into the directory");
    }

    #[test]
    fn a_damaged_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::write(&path, "not a key").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
