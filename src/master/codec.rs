//! The master's encoding of stored and replicated values: the sled state, Raft log
//! entries, vote and membership, snapshots, and the payload of Raft RPCs between masters.
//!
//! A value is one format byte ([`BINCODE`]) followed by bincode 1 (variable-length
//! integers, little endian). Values written before the tag existed are JSON: their first
//! byte is never the tag (JSON starts with `{`, `[`, `"`, a digit, `-`, `n`, `t`, `f` or
//! white space), so [`decode`] still reads them. Everything new is written as bincode.
//!
//! bincode is not self-describing: a type encoded here must not use
//! `#[serde(skip_serializing_if)]`, `#[serde(flatten)]`, untagged enums or anything that
//! needs `deserialize_any`. The round-trip tests below cover every type written.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Read, Write};

/// The format byte of a bincode value.
pub const BINCODE: u8 = 0xB1;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// An empty value (nothing to decode).
    #[error("empty value")]
    Empty,
    /// A bincode value that does not decode (or a value that cannot be encoded).
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::Error),
    /// A JSON value (written by an older version) that does not decode.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading or writing the bytes failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

/// `value` as its format byte and bincode.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    out.push(BINCODE);
    options().serialize_into(&mut out, value)?;
    Ok(out)
}

/// Writes `value` as its format byte and bincode to `out` (streamed: nothing is built
/// in memory first).
pub fn encode_to<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> Result<(), CodecError> {
    let mut out = out;
    out.write_all(&[BINCODE])?;
    options().serialize_into(out, value)?;
    Ok(())
}

/// Decodes a value written by [`encode`], or JSON written by an older version.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&BINCODE, rest)) => Ok(options().deserialize(rest)?),
        Some(_) => Ok(serde_json::from_slice(bytes)?),
    }
}

/// Decodes a value from a reader (a snapshot file), bincode or older JSON.
pub fn decode_from<R: Read, T: DeserializeOwned>(input: R) -> Result<T, CodecError> {
    let mut input = input;
    let mut first = [0u8; 1];
    if input.read(&mut first)? == 0 {
        return Err(CodecError::Empty);
    }
    if first[0] == BINCODE {
        Ok(options().deserialize_from(input)?)
    } else {
        let chained = std::io::Read::chain(&first[..], input);
        Ok(serde_json::from_reader(chained)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs_error::FsError;
    use crate::master::namespace::{
        Applied, Block, BlockRange, Command, Counters, Image, Inode, InodeKind, MountRecord,
        Outcome, SetAttrs, Sparse, UfsItem, UfsMeta, WorkerRecord, XattrMode,
    };
    use crate::master::retry_cache::{CachedCall, CallKey};
    use crate::master::types::{Entry, LogId, StoredMembership, TypeConfig, Vote};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership, SnapshotMeta};
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Debug;

    /// Both encodings of `value` decode to it: bincode (new) and JSON (old), from a
    /// slice and from a reader.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let bytes = encode(value).unwrap();
        assert_eq!(bytes[0], BINCODE);
        assert_eq!(&decode::<T>(&bytes).unwrap(), value);
        assert_eq!(&decode_from::<_, T>(&bytes[..]).unwrap(), value);
        let mut streamed = Vec::new();
        encode_to(&mut streamed, value).unwrap();
        assert_eq!(streamed, bytes);
        let json = serde_json::to_vec(value).unwrap();
        assert_eq!(&decode::<T>(&json).unwrap(), value, "json");
        assert_eq!(&decode_from::<_, T>(&json[..]).unwrap(), value, "json");
    }

    fn bare_inode() -> Inode {
        Inode {
            id: 7,
            parent: 1,
            name: "f".into(),
            kind: InodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            target: Sparse::default(),
            blocks: Vec::new(),
            pending: Sparse::default(),
            complete: false,
            rdev: 0,
            links: Sparse::default(),
            xattrs: Sparse::default(),
            ufs: None,
        }
    }

    fn full_inode() -> Inode {
        Inode {
            id: u64::MAX,
            parent: 3,
            name: "name with ünïcode".into(),
            kind: InodeKind::Symlink,
            mode: 0o7777,
            uid: u32::MAX,
            gid: 5,
            size: u64::MAX,
            atime: -1,
            mtime: i64::MIN,
            ctime: i64::MAX,
            target: "/some/target".to_string().into(),
            blocks: vec![
                Block {
                    id: 1,
                    offset: 0,
                    len: 10,
                    worker: Some(2),
                },
                Block {
                    id: 2,
                    offset: 10,
                    len: 5,
                    worker: None,
                },
            ],
            pending: vec![(9, 3)].into(),
            complete: true,
            rdev: 0x0801,
            links: vec![(4, "other".into())].into(),
            xattrs: BTreeMap::from([
                ("user.a".to_string(), vec![0, 1, 2]),
                ("user.empty".to_string(), Vec::new()),
            ])
            .into(),
            ufs: Some(Box::new(UfsMeta {
                etag: "\"abc\"".into(),
                mtime: 12,
                synced: 13,
                gen: 14,
            })),
        }
    }

    fn mount(ufs: &str) -> MountRecord {
        MountRecord {
            path: "/curvine".into(),
            source: "curvine:///data".into(),
            target: "/data".into(),
            read_only: true,
            ufs: ufs.into(),
        }
    }

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(3, 2), index)
    }

    fn membership() -> Membership<u64, BasicNode> {
        Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, BasicNode::new("127.0.0.1:1")),
                (2, BasicNode::new("127.0.0.1:2")),
                (3, BasicNode::new("127.0.0.1:3")),
                (4, BasicNode::new("127.0.0.1:4")),
            ]),
        )
    }

    fn every_command() -> Vec<Command> {
        let create = Command::Create {
            path: "/a/b".into(),
            mode: 0o644,
            uid: 1,
            gid: 2,
            overwrite: true,
            parents: false,
            now: 5,
        };
        vec![
            Command::Mkdir {
                path: "/a".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                parents: true,
                now: -5,
            },
            create.clone(),
            Command::AddBlock {
                file_id: 9,
                worker: 1,
            },
            Command::Complete {
                file_id: 9,
                length: 100,
                blocks: vec![BlockRange {
                    id: 3,
                    offset: 0,
                    len: 100,
                }],
                now: 6,
            },
            Command::Rename {
                src: "/a".into(),
                dst: "/b".into(),
                no_replace: true,
                now: 7,
            },
            Command::Delete {
                path: "/b".into(),
                recursive: true,
                now: 8,
                keep_open: true,
            },
            Command::SetAttr {
                path: "/b".into(),
                attrs: SetAttrs::default(),
                now: 9,
                id: 0,
            },
            Command::SetAttr {
                path: String::new(),
                attrs: SetAttrs {
                    mode: Some(1),
                    uid: Some(2),
                    gid: Some(3),
                    atime: Some(-4),
                    mtime: Some(5),
                    size: Some(6),
                },
                now: 9,
                id: 12,
            },
            Command::ReleaseOrphan { id: 4 },
            Command::Symlink {
                target: "t".into(),
                link: "/l".into(),
                uid: 1,
                gid: 1,
                now: 1,
            },
            Command::RegisterWorker {
                hostname: "w".into(),
                rpc_port: 1,
                web_port: 2,
            },
            Command::RemoveReplicas {
                worker: 1,
                blocks: vec![1, 2],
            },
            Command::Mknod {
                path: "/p".into(),
                kind: InodeKind::Fifo,
                mode: 0o600,
                rdev: 0,
                uid: 0,
                gid: 0,
                now: 1,
            },
            Command::Link {
                src: "/a".into(),
                dst: "/c".into(),
                now: 2,
            },
            Command::SetXattr {
                path: "/a".into(),
                name: "user.x".into(),
                value: vec![1, 2],
                mode: XattrMode::Create,
                now: 3,
            },
            Command::RemoveXattr {
                path: "/a".into(),
                name: "user.x".into(),
                now: 3,
            },
            Command::SetMounts {
                mounts: vec![mount(""), mount("{\"bucket\":\"b\"}")],
                now: 4,
            },
            Command::UfsSync {
                dir: "/d".into(),
                items: vec![UfsItem {
                    name: "n".into(),
                    dir: false,
                    size: 3,
                    mtime: 4,
                    etag: String::new(),
                }],
                gen: 2,
                last: true,
                block_size: 1 << 20,
                now: 5,
            },
            Command::CacheBlocks {
                worker: 1,
                blocks: vec![7],
            },
            Command::UfsPersisted {
                file_id: 3,
                etag: "e".into(),
                mtime: 1,
                size: 2,
            },
            Command::UfsStale { path: "/d".into() },
            Command::Once {
                client: 1,
                call: 2,
                now: 3,
                answered_below: 0,
                command: Box::new(create),
            },
        ]
    }

    fn every_result() -> Vec<Result<Outcome, FsError>> {
        vec![
            Ok(Outcome::Node(bare_inode())),
            Ok(Outcome::Node(full_inode())),
            Ok(Outcome::Block(3)),
            Ok(Outcome::Worker(4)),
            Ok(Outcome::Done),
            Ok(Outcome::Mounts(vec![mount("x")])),
            Err(FsError::NotFound("/x".into())),
            Err(FsError::AlreadyExists("/x".into())),
        ]
    }

    #[test]
    fn a_json_value_never_starts_with_the_format_byte() {
        // JSON text is UTF-8 and starts with an ASCII character; the tag is not ASCII.
        assert!(!BINCODE.is_ascii());
        assert!(decode::<u64>(&[]).is_err());
    }

    #[test]
    fn namespace_records_round_trip_with_optional_fields_set_and_unset() {
        round_trip(&bare_inode());
        round_trip(&full_inode());
        round_trip(&mount(""));
        round_trip(&mount("{\"x\":1}"));
        round_trip(&UfsMeta::default());
        round_trip(&WorkerRecord {
            id: 1,
            hostname: "h".into(),
            rpc_port: 1,
            web_port: 2,
        });
        round_trip(&Counters::default());
        for command in every_command() {
            round_trip(&command);
        }
        round_trip(&every_command());
        for result in every_result() {
            round_trip(&Applied {
                result: result.clone(),
                freed: vec![(1, 2)],
                repeated: true,
            });
            round_trip(&CachedCall {
                seq: 3,
                key: CallKey { client: 1, call: 2 },
                at: 4,
                result,
            });
        }
    }

    #[test]
    fn images_round_trip() {
        let image = Image {
            inodes: vec![bare_inode(), full_inode()],
            workers: vec![WorkerRecord {
                id: 1,
                hostname: "h".into(),
                rpc_port: 1,
                web_port: 2,
            }],
            counters: Counters::default(),
            mounts: vec![mount("")],
            retries: vec![CachedCall {
                seq: 1,
                key: CallKey { client: 1, call: 1 },
                at: 1,
                result: Ok(Outcome::Done),
            }],
        };
        let back: Image = decode(&encode(&image).unwrap()).unwrap();
        assert_eq!(back.inodes, image.inodes);
        assert_eq!(back.workers, image.workers);
        assert_eq!(back.counters, image.counters);
        assert_eq!(back.mounts, image.mounts);
        assert_eq!(back.retries, image.retries);
        let empty: Image = decode(&encode(&Image::default()).unwrap()).unwrap();
        assert!(empty.inodes.is_empty() && empty.retries.is_empty());
    }

    #[test]
    fn raft_records_round_trip() {
        round_trip(&Some(log_id(5)));
        round_trip(&None::<LogId>);
        round_trip(&Vote::new(3, 2));
        round_trip(&Vote::new_committed(3, 2));
        round_trip(&StoredMembership::default());
        round_trip(&StoredMembership::new(Some(log_id(1)), membership()));
        let entries: Vec<Entry> = vec![
            Entry {
                log_id: log_id(1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Membership(membership()),
            },
            Entry {
                log_id: log_id(3),
                payload: EntryPayload::Normal(every_command()),
            },
        ];
        for entry in &entries {
            round_trip(entry);
        }
        round_trip(&SnapshotMeta::<u64, BasicNode> {
            last_log_id: Some(log_id(9)),
            last_membership: StoredMembership::new(Some(log_id(1)), membership()),
            snapshot_id: "3-9-1".into(),
        });
        round_trip(&SnapshotMeta::<u64, BasicNode>::default());
    }

    /// Raft RPC payloads have no `PartialEq`: compared through their JSON.
    fn rpc_round_trip<T: Serialize + DeserializeOwned>(value: &T) {
        let json = serde_json::to_string(value).unwrap();
        let back: T = decode(&encode(value).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let old: T = decode(json.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&old).unwrap(), json);
    }

    #[test]
    fn raft_rpc_payloads_round_trip() {
        rpc_round_trip(&AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(4)),
            entries: vec![Entry {
                log_id: log_id(5),
                payload: EntryPayload::Normal(every_command()),
            }],
            leader_commit: None,
        });
        type Reply<T, E = openraft::error::Infallible> =
            Result<T, crate::master::types::RaftError<E>>;
        rpc_round_trip::<Reply<AppendEntriesResponse<u64>>>(&Ok(AppendEntriesResponse::Success));
        rpc_round_trip::<Reply<AppendEntriesResponse<u64>>>(&Ok(
            AppendEntriesResponse::PartialSuccess(Some(log_id(3))),
        ));
        rpc_round_trip::<Reply<AppendEntriesResponse<u64>>>(&Ok(AppendEntriesResponse::Conflict));
        rpc_round_trip::<Reply<AppendEntriesResponse<u64>>>(&Ok(
            AppendEntriesResponse::HigherVote(Vote::new(9, 3)),
        ));
        rpc_round_trip::<Reply<AppendEntriesResponse<u64>>>(&Err(
            openraft::error::RaftError::Fatal(openraft::error::Fatal::Panicked),
        ));
        rpc_round_trip(&VoteRequest::<u64> {
            vote: Vote::new(2, 1),
            last_log_id: Some(log_id(2)),
        });
        rpc_round_trip::<Reply<VoteResponse<u64>>>(&Ok(VoteResponse {
            vote: Vote::new(2, 1),
            vote_granted: true,
            last_log_id: None,
        }));
        rpc_round_trip(&InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(9)),
                last_membership: StoredMembership::new(Some(log_id(1)), membership()),
                snapshot_id: "id".into(),
            },
            offset: 1 << 20,
            data: vec![1, 2, 3],
            done: false,
        });
        rpc_round_trip::<Reply<InstallSnapshotResponse<u64>, openraft::error::InstallSnapshotError>>(
            &Ok(InstallSnapshotResponse {
                vote: Vote::new(2, 1),
            }),
        );
        rpc_round_trip::<Reply<InstallSnapshotResponse<u64>, openraft::error::InstallSnapshotError>>(
            &Err(openraft::error::RaftError::APIError(
                openraft::error::InstallSnapshotError::SnapshotMismatch(
                    openraft::error::SnapshotMismatch {
                        expect: openraft::SnapshotSegmentId {
                            id: "a".into(),
                            offset: 0,
                        },
                        got: openraft::SnapshotSegmentId {
                            id: "b".into(),
                            offset: 5,
                        },
                    },
                ),
            )),
        );
    }
}
