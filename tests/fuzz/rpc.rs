//! What the RPC handlers apply, under hostile requests: random sequences of namespace
//! [`Command`]s (paths with `..`, NUL and overlong names, unknown inode, block and worker
//! ids, sizes and offsets near `u64::MAX`) on the master's [`Namespace`], and random
//! writes and reads (ranges past the end, huge lengths) on the worker's [`BlockStore`].

use crate::{assert_allocations_bounded, cases, runner};
use curvine_fluid::config::{DataDir, Medium};
use curvine_fluid::master::namespace::{
    BlockRange, Command, Image, InodeKind, MountRecord, Namespace, SetAttrs, UfsItem, XattrMode,
    ROOT_ID,
};
use curvine_fluid::worker::block_store::{BlockStore, StoreConfig, StoreError};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::HashMap;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_string),
        1 => prop::sample::select(vec!["..", ".", "", "x\u{0}y", "é", "a b", "\n"])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec![255usize, 256, 4096]).prop_map(|n| "n".repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(name(), 0..4),
        prop_oneof![8 => Just("/"), 1 => Just(""), 1 => Just("//")],
    )
        .prop_map(|(names, lead)| format!("{lead}{}", names.join("/")))
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..24, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1)]
}

fn worker() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..4, 1 => Just(u32::MAX)]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..5000,
        1 => Just(1u64 << 36),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(i64::MAX as u64 + 1),
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 0i64..1_000_000, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn ranges() -> impl Strategy<Value = Vec<BlockRange>> {
    prop::collection::vec(
        (id(), size(), size()).prop_map(|(id, offset, len)| BlockRange { id, offset, len }),
        0..4,
    )
}

fn ufs_items() -> impl Strategy<Value = Vec<UfsItem>> {
    prop::collection::vec(
        (name(), any::<bool>(), size(), time(), "[a-z0-9]{0,4}").prop_map(
            |(name, dir, size, mtime, etag)| UfsItem {
                name,
                dir,
                size,
                mtime,
                etag,
            },
        ),
        0..4,
    )
}

fn mounts() -> impl Strategy<Value = Vec<MountRecord>> {
    prop::collection::vec(
        (
            path(),
            path(),
            any::<bool>(),
            prop_oneof![Just(""), Just("{"), Just("{}")],
        )
            .prop_map(|(path, target, read_only, ufs)| MountRecord {
                path,
                source: "curvine:///x".into(),
                target,
                read_only,
                ufs: ufs.into(),
            }),
        0..3,
    )
}

fn command() -> impl Strategy<Value = Command> {
    let kind = prop::sample::select(vec![
        InodeKind::File,
        InodeKind::Dir,
        InodeKind::Symlink,
        InodeKind::Fifo,
        InodeKind::Socket,
        InodeKind::CharDevice,
        InodeKind::BlockDevice,
    ]);
    let attrs = (
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(time()),
        prop::option::of(size()),
    )
        .prop_map(|(mode, uid, mtime, size)| SetAttrs {
            mode,
            uid,
            gid: uid,
            atime: mtime,
            mtime,
            size,
        });
    prop_oneof![
        3 => (path(), any::<bool>(), time()).prop_map(|(path, parents, now)| Command::Mkdir {
            path,
            mode: 0o755,
            uid: 0,
            gid: 0,
            parents,
            now
        }),
        3 => (path(), any::<bool>(), any::<bool>(), time()).prop_map(
            |(path, overwrite, parents, now)| Command::Create {
                path,
                mode: 0o644,
                uid: 1,
                gid: 1,
                overwrite,
                parents,
                now
            }
        ),
        3 => (id(), worker()).prop_map(|(file_id, worker)| Command::AddBlock { file_id, worker }),
        3 => (id(), size(), ranges(), time()).prop_map(|(file_id, length, blocks, now)| {
            Command::Complete {
                file_id,
                length,
                blocks,
                now,
            }
        }),
        1 => (path(), path(), any::<bool>(), time()).prop_map(|(src, dst, no_replace, now)| {
            Command::Rename {
                src,
                dst,
                no_replace,
                now,
            }
        }),
        1 => (path(), any::<bool>(), any::<bool>(), time()).prop_map(
            |(path, recursive, keep_open, now)| Command::Delete {
                path,
                recursive,
                now,
                keep_open
            }
        ),
        2 => (path(), attrs, time(), prop_oneof![3 => Just(0u64), 1 => id()])
            .prop_map(|(path, attrs, now, id)| Command::SetAttr { path, attrs, now, id }),
        1 => id().prop_map(|id| Command::ReleaseOrphan { id }),
        1 => (path(), path(), time()).prop_map(|(target, link, now)| Command::Symlink {
            target,
            link,
            uid: 0,
            gid: 0,
            now
        }),
        1 => (name(), any::<u16>(), any::<u16>()).prop_map(|(hostname, rpc_port, web_port)| {
            Command::RegisterWorker {
                hostname,
                rpc_port,
                web_port,
            }
        }),
        1 => (worker(), prop::collection::vec(id(), 0..4))
            .prop_map(|(worker, blocks)| Command::RemoveReplicas { worker, blocks }),
        1 => (path(), kind, any::<u32>(), time()).prop_map(|(path, kind, rdev, now)| {
            Command::Mknod {
                path,
                kind,
                mode: 0o600,
                rdev,
                uid: 0,
                gid: 0,
                now,
            }
        }),
        1 => (path(), path(), time()).prop_map(|(src, dst, now)| Command::Link { src, dst, now }),
        1 => (
            path(),
            prop::sample::select(vec!["user.a", "security.b", "trusted.c", "", "user."]),
            prop::collection::vec(any::<u8>(), 0..16),
            prop::sample::select(vec![XattrMode::Any, XattrMode::Create, XattrMode::Replace]),
            time()
        )
            .prop_map(|(path, name, value, mode, now)| Command::SetXattr {
                path,
                name: name.to_string(),
                value,
                mode,
                now
            }),
        1 => (path(), time()).prop_map(|(path, now)| Command::RemoveXattr {
            path,
            name: "user.a".into(),
            now
        }),
        1 => (mounts(), time()).prop_map(|(mounts, now)| Command::SetMounts { mounts, now }),
        2 => (
            path(),
            ufs_items(),
            0u64..3,
            any::<bool>(),
            prop_oneof![Just(0u64), Just(1), Just(1 << 20), Just(64 << 20), Just(u64::MAX)],
            time()
        )
            .prop_map(|(dir, items, gen, last, block_size, now)| Command::UfsSync {
                dir,
                items,
                gen,
                last,
                block_size,
                now
            }),
        1 => (worker(), prop::collection::vec(id(), 0..4))
            .prop_map(|(worker, blocks)| Command::CacheBlocks { worker, blocks }),
        1 => (id(), "[a-z]{0,3}", time(), size()).prop_map(|(file_id, etag, mtime, size)| {
            Command::UfsPersisted {
                file_id,
                etag,
                mtime,
                size,
            }
        }),
        1 => path().prop_map(|path| Command::UfsStale { path }),
    ]
}

fn image_bytes(image: &Image) -> Vec<u8> {
    serde_json::to_vec(image).unwrap()
}

/// Every entry under `dir` as (path, inode id), depth first, in name order.
fn walk(ns: &Namespace, dir: &str, out: &mut Vec<(String, u64)>) {
    let (entries, more) = ns.list(dir, "", usize::MAX).unwrap();
    assert!(!more);
    for (name, inode) in entries {
        let path = curvine_fluid::master::namespace::join_path(dir, name);
        out.push((path.clone(), inode.id));
        if inode.kind == InodeKind::Dir {
            walk(ns, &path, out);
        }
    }
}

/// What must hold after any sequence of commands.
fn check_invariants(ns: &Namespace) {
    let image = ns.image();
    // A snapshot restores the same namespace.
    let restored = Namespace::from_image(image.clone());
    assert_eq!(image_bytes(&restored.image()), image_bytes(&image));
    assert_eq!(restored.counts(), ns.counts());
    let (mut here, mut there) = (Vec::new(), Vec::new());
    walk(ns, "/", &mut here);
    walk(&restored, "/", &mut there);
    assert_eq!(here, there);
    // Every listed name resolves to its inode, and is a valid name.
    for (path, id) in &here {
        assert_eq!(ns.lookup(path).map(|i| i.id), Ok(*id), "{path:?}");
    }
    let counters = ns.counters();
    for inode in &image.inodes {
        assert!(inode.id < counters.next_inode || inode.id == ROOT_ID);
        let mut end = 0u64;
        for b in &inode.blocks {
            assert!(ns.knows_block(b.id), "block {} of inode {}", b.id, inode.id);
            assert!(b.id < counters.next_block);
            assert!(b.offset >= end, "blocks of inode {} overlap", inode.id);
            end = b.offset.checked_add(b.len).expect("a block ends past u64");
        }
        for (b, _) in &inode.pending {
            assert!(ns.knows_block(*b));
        }
    }
    let (files, dirs) = ns.counts();
    assert!(dirs >= 1 && files + dirs <= image.inodes.len() as u64);
}

#[test]
fn namespace_commands_never_panic_and_errors_change_nothing() {
    let mut runner = runner(cases(400));
    let strategy = prop::collection::vec(command(), 1..40);
    let (ok, failed) = (Cell::new(0u64), Cell::new(0u64));
    let result = runner.run(&strategy, |commands| {
        let mut ns = Namespace::default();
        for command in &commands {
            let before = image_bytes(&ns.image());
            let applied = ns.apply(command);
            let count = if applied.result.is_ok() { &ok } else { &failed };
            count.set(count.get() + 1);
            if let Err(e) = &applied.result {
                // A typed error with its wire name; the namespace as it was.
                assert!(!e.kind().is_empty());
                assert!(
                    applied.freed.is_empty(),
                    "{command:?} failed but freed blocks"
                );
                assert!(
                    image_bytes(&ns.image()) == before,
                    "{command:?} failed with {e} but changed the namespace"
                );
            }
        }
        check_invariants(&ns);
        Ok(())
    });
    if let Err(e) = result {
        panic!("namespace: {e}");
    }
    assert_allocations_bounded("namespace");
    // Both kinds of outcome are exercised, or the pass proves little.
    let (ok, failed) = (ok.get(), failed.get());
    assert!(
        ok * 10 > ok + failed && failed * 10 > ok + failed,
        "ok {ok}, failed {failed}"
    );
}

#[test]
fn under_storage_listings_with_hostile_sizes_and_names_are_bounded() {
    // A listing whose object claims u64::MAX bytes must not make a block list of that
    // many entries, and names no path can reach (NUL, too long) stay out.
    let mut ns = Namespace::default();
    let item = |name: &str, size: u64| UfsItem {
        name: name.into(),
        dir: false,
        size,
        mtime: 1,
        etag: "e".into(),
    };
    let applied = ns.apply(&Command::UfsSync {
        dir: "/".into(),
        items: vec![
            item("huge", u64::MAX),
            item("bad\u{0}name", 1),
            item(&"n".repeat(256), 1),
            item("ok", 3 << 20),
        ],
        gen: 1,
        last: true,
        block_size: 1 << 20,
        now: 1,
    });
    assert!(applied.result.is_ok(), "{:?}", applied.result);
    let mut names = Vec::new();
    walk(&ns, "/", &mut names);
    let names: Vec<&str> = names.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["/ok"]);
    assert_eq!(ns.lookup("/ok").unwrap().blocks.len(), 3);
    check_invariants(&ns);
}

/// One operation on the block store.
#[derive(Debug, Clone)]
enum StoreOp {
    /// Create block `id` expecting `expected` bytes, write `chunks`, commit or drop.
    Write {
        id: u64,
        expected: u64,
        chunks: Vec<usize>,
        commit: bool,
    },
    Read {
        id: u64,
        offset: u64,
        len: usize,
    },
    ReadInto {
        id: u64,
        offset: u64,
        len: usize,
    },
    Delete {
        id: u64,
    },
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    let id = prop_oneof![8 => 0u64..6, 1 => Just(u64::MAX)];
    let offset = prop_oneof![
        4 => 0u64..10_000,
        1 => Just(u64::MAX),
        1 => Just(usize::MAX as u64 - 1),
        1 => Just(1u64 << 40),
    ];
    let len = prop_oneof![
        4 => 0usize..10_000,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2),
        1 => Just(1usize << 40),
    ];
    prop_oneof![
        2 => (
            id.clone(),
            prop_oneof![4 => 0u64..20_000, 1 => Just(u64::MAX), 1 => Just(1u64 << 40)],
            prop::collection::vec(0usize..5000, 0..4),
            prop::bool::weighted(0.8)
        )
            .prop_map(|(id, expected, chunks, commit)| StoreOp::Write {
                id,
                expected,
                chunks,
                commit
            }),
        3 => (id.clone(), offset.clone(), len.clone())
            .prop_map(|(id, offset, len)| StoreOp::Read { id, offset, len }),
        1 => (id.clone(), offset, 0usize..10_000)
            .prop_map(|(id, offset, len)| StoreOp::ReadInto { id, offset, len }),
        1 => id.prop_map(|id| StoreOp::Delete { id }),
    ]
}

fn bytes_of(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ id) as u8).collect()
}

/// The expected answer of a read of `len` bytes at `offset` from `data`.
fn expected(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start.saturating_add(len).min(data.len());
    &data[start..end]
}

#[test]
fn block_store_reads_and_writes_match_a_model_under_hostile_ranges() {
    let mut runner = runner(cases(150));
    let strategy = prop::collection::vec(store_op(), 1..30);
    let result = runner.run(&strategy, |ops| {
        let root = tempfile::tempdir().unwrap();
        let store = BlockStore::open(StoreConfig {
            dirs: vec![DataDir {
                medium: Medium::Disk,
                capacity: Some(64 << 20),
                path: root.path().to_string_lossy().into_owned(),
            }],
            reserved: 0,
            high_watermark: 1.0,
            low_watermark: 1.0,
            format: false,
        })
        .unwrap();
        let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
        for op in &ops {
            match op {
                StoreOp::Write {
                    id,
                    expected,
                    chunks,
                    commit,
                } => match store.create(*id, *expected) {
                    Ok(mut writer) => {
                        let mut data = Vec::new();
                        for n in chunks {
                            let chunk = bytes_of(*id ^ data.len() as u64, *n);
                            writer.write(&chunk).unwrap();
                            data.extend_from_slice(&chunk);
                        }
                        if *commit {
                            assert_eq!(writer.commit().unwrap(), data.len() as u64);
                            model.insert(*id, data);
                        }
                    }
                    Err(StoreError::AlreadyExists(_)) => assert!(model.contains_key(id)),
                    Err(StoreError::NoSpace { needed }) => assert!(needed > 64 << 20),
                    Err(e) => panic!("create {id}: {e}"),
                },
                StoreOp::Read { id, offset, len } => match store.read(*id, *offset, *len) {
                    Ok(got) => assert_eq!(got, expected(&model[id], *offset, *len)),
                    Err(StoreError::NotFound(_)) => assert!(!model.contains_key(id)),
                    Err(e) => panic!("read {id}: {e}"),
                },
                StoreOp::ReadInto { id, offset, len } => {
                    let mut buf = vec![0; *len];
                    match store.read_into(*id, *offset, &mut buf) {
                        Ok(n) => assert_eq!(&buf[..n], expected(&model[id], *offset, *len)),
                        Err(StoreError::NotFound(_)) => assert!(!model.contains_key(id)),
                        Err(e) => panic!("read_into {id}: {e}"),
                    }
                }
                StoreOp::Delete { id } => {
                    assert_eq!(store.delete(*id).unwrap(), model.remove(id).is_some());
                }
            }
        }
        let mut ids: Vec<u64> = model.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(store.block_ids(), ids);
        Ok(())
    });
    if let Err(e) = result {
        panic!("block store: {e}");
    }
    assert_allocations_bounded("block store");
}
