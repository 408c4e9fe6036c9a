//! The kernel's inode numbers and the cluster paths behind them. The master's inode ids
//! are the FUSE inode numbers (stable across lookups, as `tar`, `git` and `find` expect),
//! with the mounted directory (`fuse.fs_path`) swapped with id 1, the FUSE root.
//!
//! Each known inode records its parent and name, so a path is built by walking up and a
//! directory rename moves a whole subtree by changing one entry. Entries live while the
//! kernel holds a lookup on them (`forget` drops them).
//!
//! With several dataset mounts (`fuse.mounts`) the root is no cluster directory: each of
//! its names stands for one mount's cluster directory, and a path is built from there.

use std::collections::HashMap;
use std::sync::Mutex;

/// The FUSE root inode number.
pub const ROOT: u64 = 1;

#[derive(Debug)]
struct Entry {
    parent: u64,
    name: String,
    lookups: u64,
    /// Other names of a file with hard links that this mount knows: when the name
    /// above goes, one of these takes its place.
    aliases: Vec<(u64, String)>,
}

impl Entry {
    /// The name `key` of this inode is gone: another known name takes the place of the
    /// main one, or the path is gone (open files keep working through their handles).
    fn drop_name(&mut self, key: &(u64, String)) {
        if (self.parent, self.name.as_str()) == (key.0, key.1.as_str()) {
            match self.aliases.pop() {
                Some((parent, name)) => {
                    self.parent = parent;
                    self.name = name;
                }
                None => self.name.clear(),
            }
        } else {
            self.aliases.retain(|a| a != key);
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    by_name: HashMap<(u64, String), u64>,
}

/// The master id standing for the root when the root is no cluster directory (several
/// mounts): no master hands out ids this large.
pub const VIEW_ROOT_ID: u64 = 1 << 62;

/// One directory of the root when a Dataset has several mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootEntry {
    /// Its name in the root.
    pub name: String,
    /// The cluster directory it shows.
    pub fs_path: String,
    /// Changes under it are refused with EROFS.
    pub read_only: bool,
}

/// The inode table of one mount.
#[derive(Debug)]
pub struct Inodes {
    /// Cluster path of the mount root, without a trailing `/` (empty for `/`).
    root_path: String,
    /// Master id of the mount root.
    root_id: u64,
    /// The root's directories when it shows several mounts (empty: the root is `root_path`).
    view: Vec<RootEntry>,
    table: Mutex<Table>,
}

impl Inodes {
    /// A table for a mount of `root_path`, whose master inode id is `root_id`.
    pub fn new(root_path: &str, root_id: u64) -> Inodes {
        Inodes {
            root_path: root_path.trim_end_matches('/').to_string(),
            root_id,
            view: Vec::new(),
            table: Mutex::new(Table::default()),
        }
    }

    /// A table for a root that shows several mounts, one directory each.
    pub fn with_view(view: Vec<RootEntry>) -> Inodes {
        Inodes {
            root_path: String::new(),
            root_id: VIEW_ROOT_ID,
            view,
            table: Mutex::new(Table::default()),
        }
    }

    /// The root's directories when it shows several mounts; empty otherwise.
    pub fn view(&self) -> &[RootEntry] {
        &self.view
    }

    /// The root's directory `name` when it shows several mounts.
    fn view_entry(&self, name: &str) -> Option<&RootEntry> {
        self.view.iter().find(|m| m.name == name)
    }

    /// Whether the root is a made-up directory of mounts rather than a cluster directory.
    pub fn root_is_view(&self) -> bool {
        !self.view.is_empty()
    }

    /// The mount an inode is under, when the root shows several (`None` for the root
    /// itself, a forgotten inode, or a single-mount root).
    pub fn mount_of(&self, ino: u64) -> Option<&RootEntry> {
        if self.view.is_empty() || ino == ROOT {
            return None;
        }
        let table = self.lock();
        let mut at = ino;
        for _ in 0..=table.entries.len() {
            let entry = table.entries.get(&at)?;
            if entry.parent == ROOT {
                return self.view_entry(&entry.name);
            }
            at = entry.parent;
        }
        None
    }

    /// The FUSE inode number of a master inode id.
    pub fn ino(&self, master_id: u64) -> u64 {
        if master_id == self.root_id {
            ROOT
        } else if master_id == ROOT {
            self.root_id
        } else {
            master_id
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cluster path of an inode the kernel knows; `None` when it was forgotten.
    pub fn path(&self, ino: u64) -> Option<String> {
        let table = self.lock();
        let mut names: Vec<&str> = Vec::new();
        let mut at = ino;
        // Bounded by the number of entries: a cycle cannot occur, but never loop forever.
        for _ in 0..=table.entries.len() {
            if at == ROOT {
                let mut path = self.root_path.clone();
                if self.root_is_view() {
                    // The root's name picks the mount; below it, cluster names.
                    let top = names.pop()?;
                    let mount = self.view_entry(top)?;
                    path = mount.fs_path.trim_end_matches('/').to_string();
                }
                for name in names.iter().rev() {
                    path.push('/');
                    path.push_str(name);
                }
                if path.is_empty() {
                    path.push('/');
                }
                return Some(path);
            }
            let entry = table.entries.get(&at)?;
            if entry.name.is_empty() {
                // Removed or replaced: only its open files reach it now.
                return None;
            }
            names.push(entry.name.as_str());
            at = entry.parent;
        }
        None
    }

    /// The cluster path of `name` in directory `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Option<String> {
        if parent == ROOT && self.root_is_view() {
            return self.view_entry(name).map(|m| m.fs_path.clone());
        }
        let mut path = self.path(parent)?;
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
        Some(path)
    }

    /// Records that the kernel looked up `name` in `parent` and got `ino` (one more lookup
    /// to be forgotten later).
    pub fn remember(&self, parent: u64, name: &str, ino: u64) {
        self.remember_name(parent, name, ino, false);
    }

    /// Like [`Inodes::remember`]; `linked`: the inode has several names (hard links), so
    /// the name it had here stays one of its names instead of being taken as moved.
    pub fn remember_name(&self, parent: u64, name: &str, ino: u64, linked: bool) {
        if ino == ROOT {
            return;
        }
        let mut table = self.lock();
        let key = (parent, name.to_string());
        if let Some(old) = table.by_name.insert(key.clone(), ino) {
            if old != ino {
                // Replaced behind our back (another client): the old inode keeps its
                // entry for its open files, but the name now means the new one.
                if let Some(e) = table.entries.get_mut(&old) {
                    e.name.clear();
                }
            }
        }
        let entry = table.entries.entry(ino).or_insert(Entry {
            parent,
            name: name.to_string(),
            lookups: 0,
            aliases: Vec::new(),
        });
        let known = (entry.parent == parent && entry.name == name)
            || entry.aliases.iter().any(|(p, n)| *p == parent && n == name);
        if !known {
            let old = (entry.parent, std::mem::take(&mut entry.name));
            entry.parent = parent;
            entry.name = name.to_string();
            if linked && !old.1.is_empty() {
                entry.aliases.push(old);
            } else if table.by_name.get(&old) == Some(&ino) {
                table.by_name.remove(&old);
            }
        }
        if let Some(e) = table.entries.get_mut(&ino) {
            e.lookups += 1;
        }
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(&ino) else {
            return;
        };
        entry.lookups = entry.lookups.saturating_sub(n);
        if entry.lookups == 0 {
            let mut keys = std::mem::take(&mut entry.aliases);
            keys.push((entry.parent, std::mem::take(&mut entry.name)));
            table.entries.remove(&ino);
            for key in keys {
                if table.by_name.get(&key) == Some(&ino) {
                    table.by_name.remove(&key);
                }
            }
        }
    }

    /// `name` in `parent` was removed.
    pub fn removed(&self, parent: u64, name: &str) {
        let mut table = self.lock();
        let key = (parent, name.to_string());
        if let Some(ino) = table.by_name.remove(&key) {
            if let Some(e) = table.entries.get_mut(&ino) {
                e.drop_name(&key);
            }
        }
    }

    /// `name` in `parent` was renamed to `new_name` in `new_parent` (replacing what was
    /// there).
    pub fn renamed(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let mut table = self.lock();
        let new_key = (new_parent, new_name.to_string());
        let old_key = (parent, name.to_string());
        if table.by_name.get(&new_key) == table.by_name.get(&old_key) {
            // Two names of one file: the rename changed nothing.
            return;
        }
        if let Some(replaced) = table.by_name.remove(&new_key) {
            if let Some(e) = table.entries.get_mut(&replaced) {
                e.drop_name(&new_key);
            }
        }
        if let Some(ino) = table.by_name.remove(&old_key) {
            if let Some(e) = table.entries.get_mut(&ino) {
                if (e.parent, e.name.as_str()) == (parent, name) {
                    e.parent = new_parent;
                    e.name = new_name.to_string();
                } else if let Some(a) = e.aliases.iter_mut().find(|a| **a == old_key) {
                    *a = new_key.clone();
                }
            }
            table.by_name.insert(new_key, ino);
        }
    }

    /// The inode the kernel knows under `name` in `parent`, if any.
    pub fn ino_of(&self, parent: u64, name: &str) -> Option<u64> {
        self.lock()
            .by_name
            .get(&(parent, name.to_string()))
            .copied()
    }

    /// A link made through this mount gave `ino` the name `name` in `parent` (one more
    /// lookup, as for any entry the kernel receives).
    pub fn also_named(&self, parent: u64, name: &str, ino: u64) {
        self.remember_name(parent, name, ino, true);
    }

    /// How many inodes the kernel holds (for the log and tests).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the kernel holds none besides the root.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_parents_and_renames() {
        let t = Inodes::new("/", 1);
        t.remember(ROOT, "a", 10);
        t.remember(10, "b", 11);
        t.remember(11, "f", 12);
        assert_eq!(t.path(12).as_deref(), Some("/a/b/f"));
        assert_eq!(t.child_path(ROOT, "x").as_deref(), Some("/x"));
        t.renamed(10, "b", ROOT, "c");
        assert_eq!(t.path(12).as_deref(), Some("/c/f"));
        assert_eq!(t.path(ROOT).as_deref(), Some("/"));
    }

    #[test]
    fn a_sub_directory_mount_swaps_its_id_with_the_root() {
        let t = Inodes::new("/data/ds/", 7);
        assert_eq!(t.ino(7), ROOT);
        assert_eq!(t.ino(ROOT), 7);
        assert_eq!(t.ino(9), 9);
        t.remember(ROOT, "f", 9);
        assert_eq!(t.path(9).as_deref(), Some("/data/ds/f"));
        assert_eq!(t.path(ROOT).as_deref(), Some("/data/ds"));
    }

    #[test]
    fn a_root_of_several_mounts_maps_its_names_to_their_directories() {
        let entry = |name: &str, fs_path: &str, read_only| RootEntry {
            name: name.into(),
            fs_path: fs_path.into(),
            read_only,
        };
        let t = Inodes::with_view(vec![entry("a", "/data/a", false), entry("b", "/", true)]);
        assert_eq!(t.path(ROOT), None, "the root is no cluster directory");
        assert_eq!(t.child_path(ROOT, "a").as_deref(), Some("/data/a"));
        assert_eq!(t.child_path(ROOT, "zz"), None);
        // The cluster root is a mount: its id is not the FUSE root.
        assert_eq!(t.ino(1), VIEW_ROOT_ID);
        t.remember(ROOT, "a", 20);
        t.remember(20, "f", 21);
        t.remember(ROOT, "b", t.ino(1));
        t.remember(t.ino(1), "g", 30);
        assert_eq!(t.path(21).as_deref(), Some("/data/a/f"));
        assert_eq!(t.path(30).as_deref(), Some("/g"));
        assert_eq!(t.path(20).as_deref(), Some("/data/a"));
        assert_eq!(t.mount_of(21).map(|m| m.name.as_str()), Some("a"));
        assert_eq!(t.mount_of(30).map(|m| m.read_only), Some(true));
        assert_eq!(t.mount_of(ROOT), None);
        assert_eq!(t.child_path(20, "x").as_deref(), Some("/data/a/x"));
    }

    #[test]
    fn a_hard_linked_file_keeps_a_path_while_one_of_its_names_is_left() {
        let t = Inodes::new("/", 1);
        t.remember(ROOT, "a", 10);
        t.also_named(ROOT, "b", 10);
        t.removed(ROOT, "b");
        assert_eq!(t.path(10).as_deref(), Some("/a"));
        t.also_named(ROOT, "c", 10);
        t.removed(ROOT, "a");
        assert_eq!(t.path(10).as_deref(), Some("/c"));
        t.renamed(ROOT, "c", ROOT, "d");
        assert_eq!(t.path(10).as_deref(), Some("/d"));
        t.removed(ROOT, "d");
        assert_eq!(t.path(10), None);
        // A lookup of another name of a linked file keeps the first one.
        t.remember(ROOT, "x", 11);
        t.remember_name(ROOT, "y", 11, true);
        t.removed(ROOT, "y");
        assert_eq!(t.path(11).as_deref(), Some("/x"));
    }

    #[test]
    fn forget_and_remove_drop_paths() {
        let t = Inodes::new("/", 1);
        t.remember(ROOT, "a", 10);
        t.remember(ROOT, "a", 10);
        t.forget(10, 1);
        assert!(t.path(10).is_some());
        t.forget(10, 1);
        assert!(t.path(10).is_none());
        t.remember(ROOT, "b", 11);
        t.removed(ROOT, "b");
        assert_eq!(t.path(11), None, "removed: the name is gone");
        t.remember(ROOT, "c", 12);
        t.remember(ROOT, "d", 13);
        t.renamed(ROOT, "c", ROOT, "d");
        assert_eq!(t.path(12).as_deref(), Some("/d"));
        assert_eq!(t.len(), 3);
    }
}
