//! Extended attributes of inodes: `user.` and `security.` names with their values, kept
//! with the inode (so replicated and in snapshots), with Linux's limits and rules.

use super::{InodeKind, Namespace, Outcome};
use crate::fs_error::FsError;
use serde::{Deserialize, Serialize};

/// Longest extended attribute name (Linux's XATTR_NAME_MAX).
pub const MAX_XATTR_NAME: usize = 255;
/// Largest extended attribute value (Linux's XATTR_SIZE_MAX).
pub const MAX_XATTR_VALUE: usize = 65_536;
/// Most bytes of names and values one inode's extended attributes may take.
pub const MAX_XATTR_TOTAL: usize = 256 * 1024;

/// How `SetXattr` treats an existing attribute (setxattr's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XattrMode {
    /// Create or replace.
    Any,
    /// Only create: EEXIST when it exists (`XATTR_CREATE`).
    Create,
    /// Only replace: ENODATA when it does not exist (`XATTR_REPLACE`).
    Replace,
}

/// Checks an extended attribute name: `user.` and `security.` names are kept; others
/// (`trusted.`, `system.` ACLs) are not supported.
pub fn check_xattr_name(name: &str) -> Result<(), FsError> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME {
        return Err(FsError::OutOfRange(format!(
            "attribute name of {} bytes (1 to {MAX_XATTR_NAME})",
            name.len()
        )));
    }
    if name.starts_with("user.") || name.starts_with("security.") {
        Ok(())
    } else {
        Err(FsError::NotSupported(format!(
            "attribute {name:?}: only user. and security. names are kept"
        )))
    }
}

impl Namespace {
    pub(super) fn set_xattr(
        &mut self,
        path: &str,
        name: &str,
        value: &[u8],
        mode: XattrMode,
        now: i64,
    ) -> Result<Outcome, FsError> {
        check_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE {
            return Err(FsError::TooBig(format!(
                "attribute value of {} bytes (at most {MAX_XATTR_VALUE})",
                value.len()
            )));
        }
        let id = self.lookup(path)?.id;
        let inode = self
            .inodes
            .get_mut(&id)
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if name.starts_with("user.") && !matches!(inode.kind, InodeKind::File | InodeKind::Dir) {
            // As Linux: user attributes only on regular files and directories.
            return Err(FsError::NotPermitted(format!(
                "{path}: user. attributes go on files and directories only"
            )));
        }
        let exists = inode.xattrs.contains_key(name);
        match (mode, exists) {
            (XattrMode::Create, true) => {
                return Err(FsError::AlreadyExists(format!("{path}: attribute {name}")))
            }
            (XattrMode::Replace, false) => {
                return Err(FsError::NoAttribute(format!("{path}: attribute {name}")))
            }
            _ => {}
        }
        let used: usize = inode
            .xattrs
            .iter()
            .filter(|(k, _)| k.as_str() != name)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if used + name.len() + value.len() > MAX_XATTR_TOTAL {
            return Err(FsError::NoSpace(format!(
                "{path}: extended attributes past {MAX_XATTR_TOTAL} bytes"
            )));
        }
        inode.xattrs.insert(name.to_string(), value.to_vec());
        inode.ctime = now;
        self.dirty.inodes.insert(id);
        Ok(Outcome::Done)
    }

    pub(super) fn remove_xattr(
        &mut self,
        path: &str,
        name: &str,
        now: i64,
    ) -> Result<Outcome, FsError> {
        check_xattr_name(name)?;
        let id = self.lookup(path)?.id;
        let inode = self
            .inodes
            .get_mut(&id)
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let removed = inode.xattrs.remove(name);
        inode.xattrs.shrink();
        if removed.is_none() {
            return Err(FsError::NoAttribute(format!("{path}: attribute {name}")));
        }
        inode.ctime = now;
        self.dirty.inodes.insert(id);
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{create, err, ok};
    use super::super::*;

    #[test]
    fn extended_attributes_keep_their_rules() {
        let mut ns = Namespace::default();
        ok(&mut ns, create("/f"));
        let set = |name: &str, value: &[u8], mode| Command::SetXattr {
            path: "/f".into(),
            name: name.into(),
            value: value.to_vec(),
            mode,
            now: 4,
        };
        ok(&mut ns, set("user.a", b"1", XattrMode::Any));
        ok(&mut ns, set("security.selinux", b"ctx", XattrMode::Create));
        assert_eq!(ns.lookup("/f").unwrap().xattrs["user.a"], b"1");
        assert_eq!(ns.lookup("/f").unwrap().ctime, 4);
        assert!(matches!(
            err(&mut ns, set("user.a", b"2", XattrMode::Create)),
            FsError::AlreadyExists(_)
        ));
        assert!(matches!(
            err(&mut ns, set("user.b", b"2", XattrMode::Replace)),
            FsError::NoAttribute(_)
        ));
        ok(&mut ns, set("user.a", b"2", XattrMode::Replace));
        assert!(matches!(
            err(&mut ns, set("trusted.x", b"", XattrMode::Any)),
            FsError::NotSupported(_)
        ));
        assert!(matches!(
            err(
                &mut ns,
                set(&format!("user.{}", "n".repeat(251)), b"", XattrMode::Any)
            ),
            FsError::OutOfRange(_)
        ));
        assert!(matches!(
            err(
                &mut ns,
                set("user.big", &vec![0; MAX_XATTR_VALUE + 1], XattrMode::Any)
            ),
            FsError::TooBig(_)
        ));
        let remove = |name: &str| Command::RemoveXattr {
            path: "/f".into(),
            name: name.into(),
            now: 5,
        };
        ok(&mut ns, remove("user.a"));
        assert!(matches!(
            err(&mut ns, remove("user.a")),
            FsError::NoAttribute(_)
        ));
        // Survives a snapshot; user. names only on files and directories.
        let mut ns = Namespace::from_image(ns.image());
        assert_eq!(ns.lookup("/f").unwrap().xattrs.len(), 1);
        ok(
            &mut ns,
            Command::Symlink {
                target: "f".into(),
                link: "/l".into(),
                uid: 0,
                gid: 0,
                now: 6,
            },
        );
        let on_link = Command::SetXattr {
            path: "/l".into(),
            name: "user.x".into(),
            value: Vec::new(),
            mode: XattrMode::Any,
            now: 7,
        };
        assert!(matches!(err(&mut ns, on_link), FsError::NotPermitted(_)));
    }
}
