//! Files that hold secrets or user data: directories made owner-only (0700), files made
//! owner-only (0600), and keys refused when others may read them.

use std::io;
use std::path::Path;

/// Creates `dir` (and its parents) if missing and makes it owner-only (0700 on Unix).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Makes an existing file owner-only (0600 on Unix); a missing file is left alone.
pub fn ensure_private_file(file: &Path) -> io::Result<()> {
    match std::fs::metadata(file) {
        Ok(_) => set_mode(file, 0o600),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Makes a SQLite database owner-only: the file and its `-wal` and `-shm` companions.
pub fn ensure_private_sqlite(database: &Path) -> io::Result<()> {
    ensure_private_file(database)?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = database.as_os_str().to_owned();
        companion.push(suffix);
        ensure_private_file(Path::new(&companion))?;
    }
    Ok(())
}

/// Refuses a file that its group or others may read or write (a secret such as a signing
/// key must be 0600 or stricter).
pub fn check_private_file(file: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} has mode {mode:o}: others may read it; make it owner-only \
                     (chmod 600 {})",
                    file.display(),
                    file.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_private_dir_is_owner_only_even_under_a_loose_umask() {
        let dir = std::env::temp_dir().join(format!("rc_fs_{}", uuid::Uuid::new_v4().simple()));
        let inner = dir.join("data");
        ensure_private_dir(&inner).unwrap();
        assert_eq!(mode(&inner), 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_readable_key_is_refused_until_it_is_made_private() {
        let file = std::env::temp_dir().join(format!("rc_key_{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, "secret").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private_file(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("chmod 600"));
        ensure_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        check_private_file(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
    }
}
