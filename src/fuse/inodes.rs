//! The kernel's inode numbers and the cluster paths behind them. The master's inode ids
//! are the FUSE inode numbers (stable across lookups, as `tar`, `git` and `find` expect),
//! with the mounted directory (`fuse.fs_path`) swapped with id 1, the FUSE root.
//!
//! Each known inode records its parent and name, so a path is built by walking up and a
//! directory rename moves a whole subtree by changing one entry. Entries live while the
//! kernel holds a lookup on them (`forget` drops them).

use std::collections::HashMap;
use std::sync::Mutex;

/// The FUSE root inode number.
pub const ROOT: u64 = 1;

#[derive(Debug)]
struct Entry {
    parent: u64,
    name: String,
    lookups: u64,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    by_name: HashMap<(u64, String), u64>,
}

/// The inode table of one mount.
#[derive(Debug)]
pub struct Inodes {
    /// Cluster path of the mount root, without a trailing `/` (empty for `/`).
    root_path: String,
    /// Master id of the mount root.
    root_id: u64,
    table: Mutex<Table>,
}

impl Inodes {
    /// A table for a mount of `root_path`, whose master inode id is `root_id`.
    pub fn new(root_path: &str, root_id: u64) -> Inodes {
        Inodes {
            root_path: root_path.trim_end_matches('/').to_string(),
            root_id,
            table: Mutex::new(Table::default()),
        }
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
        });
        if entry.parent != parent || entry.name != name {
            let stale = (entry.parent, std::mem::take(&mut entry.name));
            entry.parent = parent;
            entry.name = name.to_string();
            if table.by_name.get(&stale) == Some(&ino) {
                table.by_name.remove(&stale);
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
            let key = (entry.parent, std::mem::take(&mut entry.name));
            table.entries.remove(&ino);
            if table.by_name.get(&key) == Some(&ino) {
                table.by_name.remove(&key);
            }
        }
    }

    /// `name` in `parent` was removed.
    pub fn removed(&self, parent: u64, name: &str) {
        let mut table = self.lock();
        if let Some(ino) = table.by_name.remove(&(parent, name.to_string())) {
            if let Some(e) = table.entries.get_mut(&ino) {
                // Open files of it keep working through their handles; the path is gone.
                e.name.clear();
            }
        }
    }

    /// `name` in `parent` was renamed to `new_name` in `new_parent` (replacing what was
    /// there).
    pub fn renamed(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let mut table = self.lock();
        let new_key = (new_parent, new_name.to_string());
        if let Some(replaced) = table.by_name.remove(&new_key) {
            if let Some(e) = table.entries.get_mut(&replaced) {
                e.name.clear();
            }
        }
        if let Some(ino) = table.by_name.remove(&(parent, name.to_string())) {
            if let Some(e) = table.entries.get_mut(&ino) {
                e.parent = new_parent;
                e.name = new_name.to_string();
            }
            table.by_name.insert(new_key, ino);
        }
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
