//! Writing the config file atomically: a temporary file in the same directory, flushed
//! to disk, then renamed over the target. A reader sees the old file or the new one,
//! never half of one; a failure leaves the old file untouched. The file is readable by its
//! owner only (0600): it may hold values read from secret files.

use crate::error::Error;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `text` to `path` atomically, creating the parent directory if needed.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |p: &Path, source| Error::Write {
        path: p.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/a.toml");
        write_atomic(&path, "a = 1\n").unwrap();
        write_atomic(&path, "a = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 2\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner only: it may hold secrets");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("conf"))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        assert!(write_atomic(&blocker.join("a.toml"), "a = 1").is_err());
        assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "x");
    }
}
