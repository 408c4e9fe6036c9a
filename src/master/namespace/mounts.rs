//! The mount table: which dataset paths Fluid expects (`mounts[].path` of the runtime
//! config) and what backs each one.
//!
//! - `curvine://` sources are directories of this cluster's namespace. A mount whose
//!   dataset path equals its source is that directory; otherwise the dataset path is a
//!   relative symbolic link to the source, so `/curvine` shows `/data` through any mount
//!   of the file system. Unmounting never deletes data: it drops the entry and the link.
//! - Under-storage sources (`s3://`, `local://`) are cached at the dataset path itself
//!   (`target` = `path`); the storage is the truth. Unmounting drops the cached view
//!   (its blocks are freed on the workers), never the storage's data. A changed spec
//!   with the same source (options, credentials, read-only) keeps the cache.

use super::{components, normalize, InodeKind, Namespace, Outcome};
use crate::fs_error::FsError;
use serde::{Deserialize, Serialize};

/// One mount: a dataset path and the namespace directory behind it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MountRecord {
    /// The dataset path, normalised (`/curvine`).
    pub path: String,
    /// The mount point as the dataset gives it (`curvine:///data`).
    pub source: String,
    /// The namespace directory behind it (`/data`).
    pub target: String,
    /// The dataset marks the mount read-only (enforced by Fluid's read-only bind).
    pub read_only: bool,
    /// An under-storage mount's spec as JSON (`ufs::UfsSpec`); empty for `curvine://`.
    #[serde(default)]
    pub ufs: String,
}

impl std::fmt::Debug for MountRecord {
    /// The spec with inline secret values masked: records end up in logs and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spec = serde_json::from_str::<crate::ufs::UfsSpec>(&self.ufs)
            .map(|s| format!("{:?}", s.masked()))
            .unwrap_or_else(|_| format!("<{} bytes>", self.ufs.len()));
        f.debug_struct("MountRecord")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("target", &self.target)
            .field("read_only", &self.read_only)
            .field("ufs", &spec)
            .finish()
    }
}

impl MountRecord {
    /// Backed by under storage (S3, a local directory), not by this cluster.
    pub fn is_ufs(&self) -> bool {
        !self.ufs.is_empty()
    }

    /// The same dataset path over the same source: only options changed.
    fn same_source(&self, other: &MountRecord) -> bool {
        self.path == other.path && self.source == other.source && self.is_ufs() == other.is_ufs()
    }

    /// The link text when the dataset path is not the source itself.
    pub fn link_text(&self) -> Option<String> {
        (self.path != self.target).then(|| relative_link(&self.path, &self.target))
    }
}

/// The link text that leads from `link`'s directory to `target`, both absolute and
/// normalised: `/curvine` → `/data` gives `data`, `/a/b` → `/x` gives `../x`.
pub fn relative_link(link: &str, target: &str) -> String {
    let link_names: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
    let dir = &link_names[..link_names.len().saturating_sub(1)];
    let target_names: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
    let common = dir
        .iter()
        .zip(&target_names)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; dir.len() - common];
    parts.extend(&target_names[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// `a` is `b` or one of its ancestors (both normalised).
fn contains(a: &str, b: &str) -> bool {
    a == "/" || a == b || b.starts_with(&format!("{a}/"))
}

impl Namespace {
    /// The mount table, by dataset path.
    pub fn mounts(&self) -> impl Iterator<Item = &MountRecord> {
        self.mounts.values()
    }

    /// Makes the mount table exactly `wanted`: new mounts get their directory (and link),
    /// mounts no longer wanted lose their entry and link (never their data), unchanged
    /// ones are left alone. Everything is checked before anything changes.
    pub(super) fn set_mounts(
        &mut self,
        wanted: &[MountRecord],
        now: i64,
    ) -> Result<Outcome, FsError> {
        let wanted = self.check_mounts(wanted)?;
        let stale: Vec<MountRecord> = self
            .mounts
            .values()
            .filter(|m| !wanted.contains(m))
            .cloned()
            .collect();
        for old in &stale {
            self.mounts.remove(&old.path);
            self.dirty.mounts = true;
            if old.is_ufs() {
                if !wanted.iter().any(|w| w.same_source(old)) && self.lookup(&old.path).is_ok() {
                    // The cached view goes; the storage keeps its data.
                    self.delete(&old.path, true, false, now)?;
                }
                continue;
            }
            if let Some(text) = old.link_text() {
                if self.is_link_to(&old.path, &text) {
                    self.delete(&old.path, false, false, now)?;
                }
            }
            self.dirty.mounts = true;
        }
        for m in &wanted {
            if self.mounts.get(&m.path) == Some(m) {
                continue;
            }
            if m.is_ufs() {
                self.add_ufs_mount(m, now)?;
                continue;
            }
            self.mkdir(&m.target, 0o755, 0, 0, true, now)?;
            if let Some(text) = m.link_text() {
                if !self.is_link_to(&m.path, &text) {
                    if self.lookup(&m.path).is_ok() {
                        // An empty directory or a link this table no longer owns.
                        self.delete(&m.path, false, false, now)?;
                    }
                    if let Some(parent) = parent_path(&m.path) {
                        self.mkdir(&parent, 0o755, 0, 0, true, now)?;
                    }
                    self.symlink(&text, &m.path, 0, 0, now)?;
                }
            }
            self.mounts.insert(m.path.clone(), m.clone());
            self.dirty.mounts = true;
        }
        Ok(Outcome::Mounts(self.mounts.values().cloned().collect()))
    }

    /// Normalises and checks the wanted table against itself and the namespace.
    fn check_mounts(&self, wanted: &[MountRecord]) -> Result<Vec<MountRecord>, FsError> {
        let mut out: Vec<MountRecord> = Vec::with_capacity(wanted.len());
        for m in wanted {
            let m = MountRecord {
                path: normalize(&m.path)?,
                target: normalize(&m.target)?,
                ..m.clone()
            };
            if out.iter().any(|o| o.path == m.path) {
                return Err(FsError::InvalidArgument(format!(
                    "two mounts have the dataset path {}",
                    m.path
                )));
            }
            out.push(m);
        }
        for m in &out {
            self.check_dirs(&m.target)?;
            if m.is_ufs() {
                self.check_ufs_mount(m, &out)?;
                continue;
            }
            if m.path == m.target {
                continue;
            }
            if contains(&m.path, &m.target) || contains(&m.target, &m.path) {
                return Err(FsError::InvalidArgument(format!(
                    "mount {} of {}: one path contains the other, so the dataset path cannot \
                     show the source; give the mount a path beside its source",
                    m.path, m.source
                )));
            }
            // A link must not sit on the way to another mount's directories.
            if let Some(other) = out.iter().find(|o| {
                o.path != m.path && (contains(&m.path, &o.target) || contains(&m.path, &o.path))
            }) {
                return Err(FsError::InvalidArgument(format!(
                    "mount {} would be a link inside which mount {} lies; give them paths \
                     that do not nest",
                    m.path, other.path
                )));
            }
            if let Some(parent) = parent_path(&m.path) {
                self.check_dirs(&parent)?;
            }
            self.check_link_spot(m)?;
        }
        Ok(out)
    }

    /// An under-storage mount: not the root, not nested with another mount, and its
    /// path missing, an empty directory, or already this mount's view.
    fn check_ufs_mount(&self, m: &MountRecord, all: &[MountRecord]) -> Result<(), FsError> {
        if m.path != m.target {
            return Err(FsError::InvalidArgument(format!(
                "mount {} of {}: an under-storage mount is cached at its own path",
                m.path, m.source
            )));
        }
        if m.path == "/" {
            return Err(FsError::InvalidArgument(format!(
                "mount {}: under storage cannot be mounted at the root; give the mount a \
                 name or a path such as /{}",
                m.source,
                m.source
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or("data")
            )));
        }
        if let Some(other) = all.iter().find(|o| {
            o.path != m.path
                && (contains(&m.path, &o.path)
                    || contains(&o.path, &m.path)
                    || contains(&m.path, &o.target)
                    || contains(&o.target, &m.path))
        }) {
            return Err(FsError::InvalidArgument(format!(
                "mount {} of {} and mount {} nest in one another; give them paths that do \
                 not contain each other",
                m.path, m.source, other.path
            )));
        }
        // A view this table already keeps there (its cache goes when the source changes).
        let already = self.mounts.get(&m.path).is_some_and(MountRecord::is_ufs);
        if let Ok(inode) = self.lookup(&m.path) {
            let empty_dir = inode.kind == InodeKind::Dir && self.child_count(inode.id) == 0;
            if !already && !empty_dir {
                return Err(FsError::AlreadyExists(format!(
                    "{} already holds data of this cluster, so it cannot show {}; move that \
                     data away or give the mount another path",
                    m.path, m.source
                )));
            }
        }
        Ok(())
    }

    /// Makes (or keeps) the directory an under-storage mount is cached in.
    fn add_ufs_mount(&mut self, m: &MountRecord, now: i64) -> Result<(), FsError> {
        let mode = if m.read_only { 0o755 } else { 0o777 };
        if self.lookup(&m.path).is_err() {
            self.mkdir(&m.path, mode, 0, 0, true, now)?;
        }
        let id = self.lookup(&m.path)?.id;
        if let Some(dir) = self.inodes.get_mut(&id) {
            dir.mode = mode;
            if dir.ufs.is_none() {
                dir.ufs = Some(Box::default());
            }
            self.dirty.inodes.insert(id);
        }
        self.mounts.insert(m.path.clone(), m.clone());
        self.dirty.mounts = true;
        Ok(())
    }

    /// Every existing component of `path` is a directory (missing ones can be made).
    fn check_dirs(&self, path: &str) -> Result<(), FsError> {
        self.existing_dirs(&components(path)?, path).map(|_| ())
    }

    /// The dataset path of a linked mount is free: missing, an empty directory, already
    /// the right link, or a link an earlier entry of the table made.
    fn check_link_spot(&self, m: &MountRecord) -> Result<(), FsError> {
        let Ok(inode) = self.lookup(&m.path) else {
            return Ok(());
        };
        let ours = self
            .mounts
            .get(&m.path)
            .and_then(MountRecord::link_text)
            .is_some_and(|text| inode.kind == InodeKind::Symlink && *inode.target == text);
        let free = match inode.kind {
            InodeKind::Dir => self.child_count(inode.id) == 0,
            InodeKind::Symlink => m.link_text().as_deref() == Some(inode.target.as_str()),
            _ => false,
        };
        if ours || free {
            return Ok(());
        }
        Err(FsError::AlreadyExists(format!(
            "{} holds data of its own, so it cannot show the mount's source {}; move that \
             data into {} or give the mount another path",
            m.path, m.target, m.target
        )))
    }

    fn is_link_to(&self, path: &str, text: &str) -> bool {
        self.lookup(path)
            .is_ok_and(|i| i.kind == InodeKind::Symlink && *i.target == text)
    }
}

fn parent_path(path: &str) -> Option<String> {
    let names = components(path).ok()?;
    if names.is_empty() {
        return None;
    }
    Some(format!("/{}", names[..names.len() - 1].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::namespace::tests::{create, mkdir, ok};
    use crate::master::namespace::Command;

    fn mount(path: &str, target: &str) -> MountRecord {
        MountRecord {
            path: path.into(),
            source: format!("curvine://{target}"),
            target: target.into(),
            read_only: false,
            ufs: String::new(),
        }
    }

    fn set(ns: &mut Namespace, table: &[MountRecord]) -> Result<Vec<MountRecord>, FsError> {
        match ns
            .apply(&Command::SetMounts {
                mounts: table.to_vec(),
                now: 5,
            })
            .result?
        {
            Outcome::Mounts(m) => Ok(m),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn relative_links() {
        assert_eq!(relative_link("/curvine", "/data"), "data");
        assert_eq!(relative_link("/a/b", "/x"), "../x");
        assert_eq!(relative_link("/a/b/c", "/a/x/y"), "../x/y");
        assert_eq!(relative_link("/a/b", "/a/c"), "c");
    }

    #[test]
    fn add_keep_and_remove_mounts() {
        let mut ns = Namespace::default();
        let table = vec![
            mount("/curvine", "/data"),
            mount("/warehouse", "/warehouse"),
        ];
        let got = set(&mut ns, &table).unwrap();
        assert_eq!(got.len(), 2);
        let link = ns.lookup("/curvine").unwrap();
        assert_eq!(link.kind, InodeKind::Symlink);
        assert_eq!(*link.target, "data");
        assert_eq!(ns.lookup("/data").unwrap().kind, InodeKind::Dir);
        assert_eq!(ns.lookup("/warehouse").unwrap().kind, InodeKind::Dir);

        // Unchanged: a no-op, nothing dirty.
        ns.take_dirty();
        set(&mut ns, &table).unwrap();
        let dirty = ns.take_dirty();
        assert!(!dirty.mounts && dirty.inodes.is_empty());

        // /curvine dropped: the link goes, the data stays.
        let got = set(&mut ns, &table[1..]).unwrap();
        assert_eq!(got, vec![mount("/warehouse", "/warehouse")]);
        assert!(ns.lookup("/curvine").is_err());
        assert!(ns.lookup("/data").is_ok());
        assert!(ns.take_dirty().mounts);

        // Everything dropped: directories stay.
        assert!(set(&mut ns, &[]).unwrap().is_empty());
        assert!(ns.lookup("/warehouse").is_ok());
    }

    #[test]
    fn a_changed_source_moves_the_link() {
        let mut ns = Namespace::default();
        set(&mut ns, &[mount("/ds", "/one")]).unwrap();
        set(&mut ns, &[mount("/ds", "/two")]).unwrap();
        assert_eq!(*ns.lookup("/ds").unwrap().target, "two");
        assert!(ns.lookup("/one").is_ok());
    }

    #[test]
    fn refusals_change_nothing() {
        let mut ns = Namespace::default();
        set(&mut ns, &[mount("/keep", "/keep")]).unwrap();
        ok(&mut ns, mkdir("/busy", false));
        ok(&mut ns, create("/busy/file"));
        ns.take_dirty();
        for bad in [
            vec![mount("/busy", "/data")],                    // holds data
            vec![mount("/curvine", "/")],                     // the source contains the path
            vec![mount("/", "/data")],                        // the root cannot be a link
            vec![mount("/busy/file/x", "/busy/file/x")],      // a file on the way
            vec![mount("/a", "/x"), mount("/a", "/y")],       // twice
            vec![mount("/l", "/x"), mount("/l/in", "/l/in")], // nested in a link
        ] {
            assert!(set(&mut ns, &bad).is_err(), "{bad:?} was accepted");
            let dirty = ns.take_dirty();
            assert!(
                dirty.inodes.is_empty() && !dirty.mounts,
                "{bad:?} changed things"
            );
            assert_eq!(ns.mounts().count(), 1);
        }
        // An empty directory at the path is replaced by the link.
        ok(&mut ns, mkdir("/empty", false));
        set(&mut ns, &[mount("/empty", "/data")]).unwrap();
        assert_eq!(ns.lookup("/empty").unwrap().kind, InodeKind::Symlink);
    }

    fn s3(path: &str, source: &str, read_only: bool) -> MountRecord {
        MountRecord {
            path: path.into(),
            source: source.into(),
            target: path.into(),
            read_only,
            ufs: format!(r#"{{"source":"{source}","ro":{read_only}}}"#),
        }
    }

    #[test]
    fn under_storage_mounts_keep_their_cache_across_option_changes() {
        let mut ns = Namespace::default();
        set(&mut ns, &[s3("/imagenet", "s3://b/imagenet", true)]).unwrap();
        let dir = ns.lookup("/imagenet").unwrap();
        assert_eq!((dir.kind, dir.mode), (InodeKind::Dir, 0o755));
        ok(
            &mut ns,
            Command::UfsSync {
                dir: "/imagenet".into(),
                items: vec![crate::master::namespace::UfsItem {
                    name: "a".into(),
                    dir: false,
                    size: 3,
                    mtime: 1,
                    etag: "e".into(),
                }],
                gen: 1,
                last: true,
                block_size: 64,
                now: 9,
            },
        );
        // Options change (writable now): the cached listing stays, the mode follows.
        set(&mut ns, &[s3("/imagenet", "s3://b/imagenet", false)]).unwrap();
        assert!(ns.lookup("/imagenet/a").is_ok());
        assert_eq!(ns.lookup("/imagenet").unwrap().mode, 0o777);
        // Another source: the cached view starts again.
        set(&mut ns, &[s3("/imagenet", "s3://b/other", false)]).unwrap();
        assert!(ns.lookup("/imagenet/a").is_err());
        // Unmounted: the cached view goes.
        set(&mut ns, &[]).unwrap();
        assert!(ns.lookup("/imagenet").is_err());
        // Refused: the root, nesting, a path holding cluster data.
        ok(&mut ns, mkdir("/busy", false));
        ok(&mut ns, create("/busy/f"));
        for bad in [
            vec![s3("/", "s3://b/p", true)],
            vec![s3("/a", "s3://b/p", true), s3("/a/b", "s3://b/q", true)],
            vec![s3("/a", "s3://b/p", true), mount("/c", "/a/x")],
            vec![s3("/busy", "s3://b/p", true)],
        ] {
            assert!(set(&mut ns, &bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_record_never_shows_an_inline_secret() {
        let (spec, _) = crate::ufs::UfsSpec::from_fluid(
            "s3://bucket/p",
            &[
                ("access".to_string(), "AKIAEXAMPLE".to_string()),
                ("secret".to_string(), "very-secret-value".to_string()),
            ]
            .into(),
            &Default::default(),
        )
        .unwrap();
        let mut m = s3("/p", "s3://bucket/p", true);
        m.ufs = serde_json::to_string(&spec).unwrap();
        let shown = format!(
            "{m:?} {:?}",
            Command::SetMounts {
                mounts: vec![m.clone()],
                now: 1
            }
        );
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("s3://bucket/p"));
    }

    #[test]
    fn the_table_survives_an_image() {
        let mut ns = Namespace::default();
        set(&mut ns, &[mount("/curvine", "/data")]).unwrap();
        let again = Namespace::from_image(ns.image());
        assert_eq!(
            again.mounts().cloned().collect::<Vec<_>>(),
            vec![mount("/curvine", "/data")]
        );
    }
}
