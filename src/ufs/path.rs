//! Paths handed to the under-storage layer: relative to the mount (`a/b`, `""` for the
//! mount's root), checked before anything reaches the storage, and spelled the way
//! opendal wants them (`a/b` for a file, `a/b/` for a directory, `/` for the root).

use super::error::UfsError;

/// Checks `path` (relative to mount `mount`): no leading `/`, no empty, `.` or `..`
/// components, no NUL. The empty path (the mount's root) passes only when `root_ok`.
pub(crate) fn check(mount: &str, path: &str, root_ok: bool) -> Result<(), UfsError> {
    let bad = |why: &str| {
        Err(UfsError::Other(format!(
            "{mount}: invalid path {path:?}: {why}; paths are relative to the mount, like \"a/b\""
        )))
    };
    if path.is_empty() {
        return if root_ok {
            Ok(())
        } else {
            bad("this operation needs a file or directory below the mount's root")
        };
    }
    if path.contains('\0') {
        return bad("it contains NUL");
    }
    if path.starts_with('/') {
        return bad("it starts with '/'");
    }
    for part in path.split('/') {
        match part {
            "" => return bad("it has an empty component"),
            "." | ".." => return bad("it has a '.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

/// The opendal path of directory `dir` (`""` is the root).
pub(crate) fn dir_path(dir: &str) -> String {
    if dir.is_empty() {
        "/".to_string()
    } else {
        format!("{dir}/")
    }
}

/// The last component of an opendal entry path (`a/b/` -> `b`, `a/c` -> `c`).
pub(crate) fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        for good in ["a", "a/b", "a.b/c..d", ".hidden/x"] {
            assert!(check("m", good, false).is_ok(), "{good}");
        }
        assert!(check("m", "", true).is_ok());
        for bad in ["", "/a", "a//b", "a/", "../a", "a/./b", "a/..", "a\0b"] {
            let err = check("s3://b", bad, false).unwrap_err();
            assert!(matches!(err, UfsError::Other(_)), "{bad}");
            assert!(err.to_string().starts_with("s3://b: invalid path"), "{err}");
        }
    }

    #[test]
    fn opendal_spelling() {
        assert_eq!(dir_path(""), "/");
        assert_eq!(dir_path("a/b"), "a/b/");
        assert_eq!(base_name("a/b/"), "b");
        assert_eq!(base_name("a/c"), "c");
        assert_eq!(base_name("c"), "c");
    }
}
