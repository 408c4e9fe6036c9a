//! Which version of each file the kernel's page cache holds: an open of a file that did
//! not change since the last open keeps the cache (`FOPEN_KEEP_CACHE`), an open of one
//! that changed anywhere in the cluster drops it (close-to-open consistency).
//!
//! A file's version is a digest of its length, modification time and block list. Any
//! committed change of its data changes one of them: appends add blocks, rewrites and
//! truncates replace them, and a checkpoint of blocks kept open (same ids, maybe the same
//! length) moves the modification time, which the master makes strictly increase.

use crate::fuse::handles::lock;
use crate::rpc::pb::master as pb;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// The version of each inode whose data the kernel may hold in its page cache.
#[derive(Debug, Default)]
pub struct CachedVersions {
    by_ino: Mutex<HashMap<u64, u64>>,
}

/// The version of a located file: equal versions mean equal data.
pub fn version(located: &pb::FileBlocks) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(st) = &located.status {
        (st.id, st.size, st.mtime_ms).hash(&mut h);
    }
    for b in &located.blocks {
        (b.id, b.offset, b.len).hash(&mut h);
    }
    h.finish()
}

impl CachedVersions {
    /// An open of `ino` found it at `version`: whether the kernel may keep what it
    /// cached (it cached this same version). Records `version` either way.
    pub fn keep(&self, ino: u64, version: u64) -> bool {
        lock(&self.by_ino).insert(ino, version) == Some(version)
    }

    /// The kernel's pages of `ino` are not known to be any committed version (it is
    /// being written here, or the kernel forgot it): the next open drops them.
    pub fn forget(&self, ino: u64) {
        lock(&self.by_ino).remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(size: u64, mtime: i64, blocks: &[u64]) -> pb::FileBlocks {
        pb::FileBlocks {
            status: Some(pb::FileStatus {
                id: 7,
                size,
                mtime_ms: mtime,
                ..Default::default()
            }),
            blocks: blocks
                .iter()
                .enumerate()
                .map(|(i, id)| pb::LocatedBlock {
                    id: *id,
                    offset: i as u64 * 10,
                    len: 10,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn only_an_unchanged_file_keeps_the_cache() {
        let v = CachedVersions::default();
        let a = version(&located(20, 5, &[1, 2]));
        assert!(!v.keep(3, a), "nothing cached yet");
        assert!(v.keep(3, a), "same blocks, length and time");
        let rewritten = version(&located(20, 5, &[1, 9]));
        assert!(
            !v.keep(3, rewritten),
            "a block replaced, same length and time"
        );
        let appended = version(&located(30, 5, &[1, 9, 4]));
        assert!(!v.keep(3, appended));
        assert!(!v.keep(3, version(&located(30, 6, &[1, 9, 4]))), "touched");
        v.forget(3);
        assert!(!v.keep(3, appended), "forgotten");
        assert!(!v.keep(4, appended), "another inode");
    }
}
