//! The handle tables of one mount: open files and open directories by handle number, and
//! the write task of each file open for writing, by inode.

use super::read::HandleReader;
use super::write::FileWrites;
use crate::client::FileStatus;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One open file.
#[derive(Debug)]
pub struct OpenFile {
    /// The inode it is a handle of.
    pub ino: u64,
    /// The read side; `None` for a write-only handle.
    pub reader: Option<HandleReader>,
    /// For a handle open for writing: the file's status at open, until the first write
    /// starts the file's write task (a create that writes nothing never starts one).
    pub write_from: Option<FileStatus>,
    /// The file's write task, once this handle wrote (or read through it).
    pub writes: OnceLock<Arc<FileWrites>>,
}

impl OpenFile {
    /// A handle of `ino` reading through `reader` and, when `write_from` is set, open for
    /// writing.
    pub fn new(ino: u64, reader: Option<HandleReader>, write_from: Option<FileStatus>) -> OpenFile {
        OpenFile {
            ino,
            reader,
            write_from,
            writes: OnceLock::new(),
        }
    }
}

/// One open directory: its listing, fetched at the first read.
#[derive(Debug, Default)]
pub struct OpenDir {
    /// The listing, once read.
    pub entries: tokio::sync::Mutex<Option<Arc<Vec<FileStatus>>>>,
}

/// Open files by handle number, and how many handles each inode has.
#[derive(Debug, Default)]
struct Files {
    by_fh: HashMap<u64, Arc<OpenFile>>,
    per_ino: HashMap<u64, usize>,
}

/// The handle tables.
#[derive(Debug)]
pub struct Handles {
    next_fh: AtomicU64,
    files: Mutex<Files>,
    dirs: Mutex<HashMap<u64, Arc<OpenDir>>>,
    /// Files open for writing, by inode.
    writes: Mutex<HashMap<u64, Arc<FileWrites>>>,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles {
            next_fh: AtomicU64::new(1),
            files: Mutex::default(),
            dirs: Mutex::default(),
            writes: Mutex::default(),
        }
    }
}

/// Locks a table; a panic elsewhere while holding it leaves it usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handles {
    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Records an open file; its handle number.
    pub fn open_file(&self, file: OpenFile) -> u64 {
        let fh = self.new_fh();
        let mut files = lock(&self.files);
        *files.per_ino.entry(file.ino).or_default() += 1;
        files.by_fh.insert(fh, Arc::new(file));
        fh
    }

    /// The open file of a handle number.
    pub fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        lock(&self.files).by_fh.get(&fh).cloned()
    }

    /// Whether a handle of `ino` is open.
    pub fn is_open(&self, ino: u64) -> bool {
        lock(&self.files).per_ino.contains_key(&ino)
    }

    /// Drops an open file; what it was.
    pub fn close_file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        let mut files = lock(&self.files);
        let file = files.by_fh.remove(&fh)?;
        if let Some(n) = files.per_ino.get_mut(&file.ino) {
            *n -= 1;
            if *n == 0 {
                files.per_ino.remove(&file.ino);
            }
        }
        Some(file)
    }

    /// Records an open directory; its handle number.
    pub fn open_dir(&self) -> u64 {
        let fh = self.new_fh();
        lock(&self.dirs).insert(fh, Arc::new(OpenDir::default()));
        fh
    }

    /// The open directory of a handle number.
    pub fn dir(&self, fh: u64) -> Option<Arc<OpenDir>> {
        lock(&self.dirs).get(&fh).cloned()
    }

    /// Drops an open directory.
    pub fn close_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// The write task of an inode open for writing.
    pub fn writes_of(&self, ino: u64) -> Option<Arc<FileWrites>> {
        lock(&self.writes).get(&ino).cloned()
    }

    /// The write task of an inode: the running one (with one more opener), else the one
    /// `start` makes.
    pub fn start_writes(
        &self,
        ino: u64,
        start: impl FnOnce() -> Arc<FileWrites>,
    ) -> Arc<FileWrites> {
        let mut open = lock(&self.writes);
        if let Some(w) = open.get(&ino) {
            w.opened();
            return w.clone();
        }
        let w = start();
        open.insert(ino, w.clone());
        w
    }

    /// The last writer of `ino` closed: drops its write task, unless another replaced it.
    pub fn end_writes(&self, ino: u64, writes: &Arc<FileWrites>) {
        let mut open = lock(&self.writes);
        if open.get(&ino).is_some_and(|w| Arc::ptr_eq(w, writes)) {
            open.remove(&ino);
        }
    }

    /// Every write task, with its inode.
    pub fn all_writes(&self) -> Vec<(u64, Arc<FileWrites>)> {
        lock(&self.writes)
            .iter()
            .map(|(i, w)| (*i, w.clone()))
            .collect()
    }

    /// Files open for writing now.
    pub fn open_for_write(&self) -> usize {
        lock(&self.writes).len()
    }
}
