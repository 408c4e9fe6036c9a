//! Conversions at the master's edges: namespace records to wire messages and back, and
//! Raft's "not the leader" answer to the error clients follow.

use super::namespace::{BlockRange, Inode, InodeKind, MountRecord, Namespace};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use openraft::error::ForwardToLeader;
use openraft::BasicNode;

/// The file ranges of a completed file's blocks: explicit offsets when the client sent
/// them (all or none), else one block after the other from offset 0.
pub fn block_ranges(blocks: &[pb::BlockInfo]) -> Result<Vec<BlockRange>, FsError> {
    let explicit = blocks.iter().filter(|b| b.offset.is_some()).count();
    if explicit != 0 && explicit != blocks.len() {
        return Err(FsError::InvalidArgument(
            "either every block of a completed file has an offset or none has".into(),
        ));
    }
    let mut next = 0;
    Ok(blocks
        .iter()
        .map(|b| {
            let offset = b.offset.unwrap_or(next);
            next = offset + b.len;
            BlockRange {
                id: b.id,
                offset,
                len: b.len,
            }
        })
        .collect())
}

/// Converts an inode to its wire status.
pub fn file_status(path: &str, inode: &Inode, ns: &Namespace) -> pb::FileStatus {
    let kind = match inode.kind {
        InodeKind::File => pb::FileKind::File,
        InodeKind::Dir => pb::FileKind::Directory,
        InodeKind::Symlink => pb::FileKind::Symlink,
        InodeKind::Fifo => pb::FileKind::Fifo,
        InodeKind::Socket => pb::FileKind::Socket,
        InodeKind::CharDevice => pb::FileKind::CharDevice,
        InodeKind::BlockDevice => pb::FileKind::BlockDevice,
    };
    let read_only = || -> bool {
        if !ns.mounts().any(|m| m.is_ufs() && m.read_only) {
            return false;
        }
        let own;
        let at = if path.is_empty() {
            own = ns.path_of(inode.id).unwrap_or_default();
            own.as_str()
        } else {
            path
        };
        ns.ufs_mount_of(at).is_some_and(|(m, _)| m.read_only)
    };
    let children = if inode.kind == InodeKind::Dir {
        ns.child_count(inode.id)
    } else {
        0
    };
    pb::FileStatus {
        id: inode.id,
        path: path.to_string(),
        // The name the caller used: a file with hard links has several.
        name: path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(&inode.name)
            .to_string(),
        kind: kind as i32,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        size: inode.size,
        atime_ms: inode.atime,
        mtime_ms: inode.mtime,
        ctime_ms: inode.ctime,
        nlink: ns.nlink(inode),
        symlink_target: inode.target.to_string(),
        complete: inode.complete,
        children,
        parent: inode.parent,
        rdev: inode.rdev,
        xattrs: inode.xattrs.len() as u32,
        read_only: read_only(),
    }
}

/// The namespace's kind of a wire kind that `mknod` may make.
pub fn special_kind(kind: i32) -> Result<InodeKind, FsError> {
    match pb::FileKind::try_from(kind) {
        Ok(pb::FileKind::Fifo) => Ok(InodeKind::Fifo),
        Ok(pb::FileKind::Socket) => Ok(InodeKind::Socket),
        Ok(pb::FileKind::CharDevice) => Ok(InodeKind::CharDevice),
        Ok(pb::FileKind::BlockDevice) => Ok(InodeKind::BlockDevice),
        _ => Err(FsError::InvalidArgument(format!(
            "mknod makes FIFOs, sockets and devices, not kind {kind}"
        ))),
    }
}

/// `dir/name` as an absolute path.
pub use super::namespace::join_path as join;

/// A mount table entry from the wire.
pub fn mount_record(m: pb::MountEntry) -> MountRecord {
    MountRecord {
        path: m.path,
        source: m.source,
        target: m.target,
        read_only: m.read_only,
        ufs: m.ufs,
    }
}

/// The mount table on the wire.
pub fn mount_table<'a>(mounts: impl Iterator<Item = &'a MountRecord>) -> pb::MountTable {
    pb::MountTable {
        mounts: mounts
            .map(|m| pb::MountEntry {
                path: m.path.clone(),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
                ufs: m.ufs.clone(),
            })
            .collect(),
    }
}

/// A "forward to the leader" answer of Raft as the error clients follow (the leader's
/// journal address, which serves the client API too).
pub fn not_leader(f: ForwardToLeader<u64, BasicNode>) -> FsError {
    FsError::NotLeader {
        leader: f.leader_node.map(|n| n.addr),
    }
}
