//! Names of files: hard links (several names of one inode), moving and dropping one
//! name, and orphans (files whose last name went while a client has them open: kept,
//! without a name, until `ReleaseOrphan`).

use super::{InodeId, InodeKind, Namespace, Outcome, MAX_LINKS};
use crate::fs_error::FsError;

impl Namespace {
    /// Removes the name `name` of `parent` (its inode `id`): the last name removes the
    /// inode and frees its blocks; otherwise the inode keeps its other names (its
    /// `ctime` changes).
    pub(super) fn unlink_name(&mut self, parent: InodeId, name: &str, id: InodeId, now: i64) {
        self.unlink_name_of(parent, name, id, false, now);
    }

    /// [`Namespace::unlink_name`]; `keep_open`: the last name going leaves the inode as
    /// an orphan (no name, its blocks kept) until `ReleaseOrphan`.
    pub(super) fn unlink_name_of(
        &mut self,
        parent: InodeId,
        name: &str,
        id: InodeId,
        keep_open: bool,
        now: i64,
    ) {
        let Some(inode) = self.inodes.get_mut(&id) else {
            return;
        };
        if inode.links.is_empty() && keep_open {
            inode.name.clear();
            inode.ctime = now;
            self.dirty.inodes.insert(id);
            self.orphans.insert(id);
            if let Some(siblings) = self.children.get_mut(&parent) {
                siblings.remove(name);
            }
            return;
        }
        if inode.links.is_empty() {
            let freed = self.remove(id);
            self.freed.extend(freed);
            return;
        }
        if inode.parent == parent && inode.name == name {
            let (p, n) = inode.links.remove(0);
            inode.parent = p;
            inode.name = n;
        } else {
            inode.links.retain(|(p, n)| !(*p == parent && n == name));
        }
        inode.links.shrink();
        inode.ctime = now;
        self.dirty.inodes.insert(id);
        if let Some(siblings) = self.children.get_mut(&parent) {
            siblings.remove(name);
        }
    }

    /// Moves the name (`from`) of inode `id` to (`to`): its primary name or one of its
    /// links.
    pub(super) fn move_name(&mut self, id: InodeId, from: (InodeId, &str), to: (InodeId, String)) {
        let Some(inode) = self.inodes.get_mut(&id) else {
            return;
        };
        if inode.parent == from.0 && inode.name == from.1 {
            inode.parent = to.0;
            inode.name = to.1.clone();
        } else if let Some(link) = inode
            .links
            .iter_mut()
            .find(|(p, n)| *p == from.0 && n == from.1)
        {
            *link = to.clone();
        }
        if let Some(siblings) = self.children.get_mut(&from.0) {
            siblings.remove(from.1);
        }
        self.children
            .entry(to.0)
            .or_default()
            .insert(to.1.as_str().into(), id);
    }

    pub(super) fn link(&mut self, src: &str, dst: &str, now: i64) -> Result<Outcome, FsError> {
        let (src_parent, src_name) = self.parent_of(src)?;
        let id = self
            .child(src_parent, &src_name)
            .ok_or_else(|| FsError::NotFound(src.to_string()))?;
        if self.inodes[&id].kind == InodeKind::Dir {
            return Err(FsError::NotPermitted(format!(
                "{src} is a directory: directories have no hard links"
            )));
        }
        let (dst_parent, dst_name) = self.parent_of(dst)?;
        if self.child(dst_parent, &dst_name).is_some() {
            return Err(FsError::AlreadyExists(dst.to_string()));
        }
        if self.inodes[&id].names() as usize >= MAX_LINKS {
            return Err(FsError::TooManyLinks(src.to_string()));
        }
        let inode = self
            .inodes
            .get_mut(&id)
            .ok_or_else(|| FsError::NotFound(src.to_string()))?;
        inode.links.push((dst_parent, dst_name.clone()));
        inode.ctime = now;
        let out = inode.clone();
        self.dirty.inodes.insert(id);
        self.children
            .entry(dst_parent)
            .or_default()
            .insert(dst_name.into(), id);
        self.touch(dst_parent, now);
        Ok(Outcome::Node(*out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{create, delete, err, file_with_block, mkdir, ok, rename};
    use super::super::*;

    fn link(src: &str, dst: &str, now: i64) -> Command {
        Command::Link {
            src: src.into(),
            dst: dst.into(),
            now,
        }
    }

    #[test]
    fn hard_links_share_one_inode_until_the_last_name_goes() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/d", false));
        let (id, b) = file_with_block(&mut ns, "/f", 10);
        let Outcome::Node(linked) = ok(&mut ns, link("/f", "/d/g", 5)) else {
            panic!()
        };
        assert_eq!((linked.id, linked.names(), linked.ctime), (id, 2, 5));
        assert_eq!(ns.lookup("/d/g").unwrap().id, id);
        assert_eq!(ns.inode(ns.lookup("/d").unwrap().id).unwrap().mtime, 5);
        assert_eq!(ns.counts(), (1, 2), "one file, two names");
        assert!(matches!(
            err(&mut ns, link("/f", "/d/g", 6)),
            FsError::AlreadyExists(_)
        ));
        assert!(matches!(
            err(&mut ns, link("/d", "/e", 6)),
            FsError::NotPermitted(_)
        ));
        assert!(matches!(
            err(&mut ns, link("/nope", "/e", 6)),
            FsError::NotFound(_)
        ));
        // Unlinking the first name keeps the data under the other; no block is freed.
        let applied = ns.apply(&delete("/f", false));
        assert!(applied.result.is_ok() && applied.freed.is_empty());
        let g = ns.lookup("/d/g").unwrap();
        assert_eq!(
            (g.id, g.names(), g.size, g.parent),
            (id, 1, 10, ns.lookup("/d").unwrap().id)
        );
        assert!(ns.lookup("/f").is_err());
        // Survives a snapshot round trip.
        let mut ns = Namespace::from_image(ns.image());
        ok(&mut ns, link("/d/g", "/h", 7));
        let mut ns = Namespace::from_image(ns.image());
        assert_eq!(ns.lookup("/h").unwrap().names(), 2);
        // The last name frees the blocks.
        ok(&mut ns, delete("/h", false));
        let applied = ns.apply(&delete("/d/g", false));
        assert_eq!(applied.freed, vec![(b, 7)]);
        assert_eq!(ns.counts(), (0, 2));
    }

    #[test]
    fn renames_and_recursive_deletes_respect_other_names() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/d", false));
        let (id, _) = file_with_block(&mut ns, "/d/f", 4);
        ok(&mut ns, link("/d/f", "/keep", 2));
        ok(&mut ns, link("/d/f", "/d/f2", 2));
        // Renaming a name onto another name of the same file does nothing.
        ok(&mut ns, rename("/d/f", "/d/f2"));
        assert_eq!(ns.lookup("/d/f").unwrap().id, id);
        assert_eq!(ns.lookup("/keep").unwrap().names(), 3);
        // Renaming a secondary name moves that name only.
        ok(&mut ns, rename("/d/f2", "/moved"));
        assert!(ns.lookup("/d/f2").is_err());
        assert_eq!(ns.lookup("/moved").unwrap().id, id);
        // Replacing a linked file by rename drops one of its names.
        file_with_block(&mut ns, "/other", 1);
        ok(&mut ns, rename("/other", "/moved"));
        assert_eq!(ns.lookup("/keep").unwrap().names(), 2);
        // Removing the directory removes the name inside; the file lives on.
        let applied = ns.apply(&delete("/d", true));
        assert!(applied.result.is_ok() && applied.freed.is_empty());
        let keep = ns.lookup("/keep").unwrap();
        assert_eq!((keep.id, keep.names(), keep.size), (id, 1, 4));
    }

    #[test]
    fn a_file_unlinked_while_open_keeps_its_blocks_until_released() {
        let mut ns = Namespace::default();
        let (id, b) = file_with_block(&mut ns, "/f", 8);
        let keep = Command::Delete {
            path: "/f".into(),
            recursive: false,
            now: 5,
            keep_open: true,
        };
        let applied = ns.apply(&keep);
        assert!(applied.result.is_ok() && applied.freed.is_empty());
        assert!(ns.lookup("/f").is_err(), "the name is gone");
        let orphan = ns.target("", id).unwrap().clone();
        assert_eq!((ns.nlink(&orphan), orphan.size), (0, 8));
        // The name can be taken again by another file.
        ok(&mut ns, create("/f"));
        // An orphan survives a snapshot, and its release frees its blocks once.
        let mut ns = Namespace::from_image(ns.image());
        assert_eq!(ns.nlink(ns.target("", id).unwrap()), 0);
        let applied = ns.apply(&Command::ReleaseOrphan { id });
        assert_eq!(applied.freed, vec![(b, 7)]);
        assert!(ns.target("", id).is_err());
        assert!(ns.apply(&Command::ReleaseOrphan { id }).freed.is_empty());
        assert!(ns.lookup("/f").is_ok(), "the new file is untouched");
    }

    #[test]
    fn special_files_and_directory_link_counts() {
        let mut ns = Namespace::default();
        let mknod = |path: &str, kind, rdev| Command::Mknod {
            path: path.into(),
            kind,
            mode: 0o640,
            rdev,
            uid: 5,
            gid: 6,
            now: 9,
        };
        for (path, kind, rdev) in [
            ("/p", InodeKind::Fifo, 0),
            ("/s", InodeKind::Socket, 0),
            ("/c", InodeKind::CharDevice, 0x0103),
            ("/b", InodeKind::BlockDevice, 0x0801),
        ] {
            let Outcome::Node(n) = ok(&mut ns, mknod(path, kind, rdev)) else {
                panic!()
            };
            assert_eq!(
                (n.kind, n.rdev, n.mode, n.uid, n.gid),
                (kind, rdev, 0o640, 5, 6)
            );
        }
        assert!(matches!(
            err(&mut ns, mknod("/p", InodeKind::Fifo, 0)),
            FsError::AlreadyExists(_)
        ));
        assert!(matches!(
            err(&mut ns, mknod("/x", InodeKind::Dir, 0)),
            FsError::InvalidArgument(_)
        ));
        ok(&mut ns, link("/p", "/p2", 10));
        assert_eq!(ns.lookup("/p2").unwrap().kind, InodeKind::Fifo);
        let root = ns.lookup("/").unwrap().clone();
        assert_eq!(ns.nlink(&root), 2);
        ok(&mut ns, mkdir("/a/b/c", true));
        ok(&mut ns, mkdir("/e", false));
        let root = ns.lookup("/").unwrap().clone();
        assert_eq!(ns.nlink(&root), 4);
        ok(&mut ns, rename("/a/b", "/e/b"));
        let a = ns.lookup("/a").unwrap().clone();
        let e = ns.lookup("/e").unwrap().clone();
        assert_eq!((ns.nlink(&a), ns.nlink(&e)), (2, 3));
        ok(&mut ns, delete("/e", true));
        let root = ns.lookup("/").unwrap().clone();
        assert_eq!(ns.nlink(&root), 3);
        let ns = Namespace::from_image(ns.image());
        let root = ns.lookup("/").unwrap().clone();
        assert_eq!(ns.nlink(&root), 3, "rebuilt from a snapshot");
    }
}
