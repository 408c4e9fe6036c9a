//! A master's meta and journal dirs written in the old JSON format (by hand here, with
//! serde_json of the same types) load in the current master: the state, the log entries
//! after it (applied again at start), the vote, and the snapshot older versions kept in
//! sled (moved to `raft-snapshot.bin`). New writes go on in the binary format and survive
//! a restart.

use curvine_fluid::client::Client;
use curvine_fluid::master::namespace::{Command, Inode, Namespace};
use curvine_fluid::master::types::{Entry, LogId, StoredMembership, Vote};
use curvine_fluid::standalone::Standalone;
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership, SnapshotMeta};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The snapshot record older versions kept in sled (`m:snapshot`).
#[derive(Serialize)]
struct OldStoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The payload of an old snapshot.
#[derive(Serialize)]
struct OldSnapshotData {
    image: curvine_fluid::master::namespace::Image,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn create(path: &str) -> Command {
    Command::Create {
        path: path.into(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        overwrite: false,
        parents: false,
        now: 1_000,
    }
}

fn mkdir(path: &str) -> Command {
    Command::Mkdir {
        path: path.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
        parents: false,
        now: 1_000,
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        CommittedLeaderId::new(term, if term == 0 { 0 } else { 1 }),
        index,
    )
}

/// Writes, as the JSON version did: a journal with the membership (index 0), a blank
/// entry and three entries of commands, all committed; a state machine that applied up to
/// index 3 (`/old`, `/old/a`), and a snapshot at index 2 (`/old`) in sled.
fn write_old_dirs(meta_dir: &Path, journal_dir: &Path) {
    let membership = Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]),
    );
    let commands = [
        (2, mkdir("/old")),
        (3, create("/old/a")),
        (4, create("/old/b")),
    ];

    let journal = sled::open(journal_dir).unwrap();
    let log = journal.open_tree("log").unwrap();
    let mut entries: Vec<Entry> = vec![
        Entry {
            log_id: log_id(0, 0),
            payload: EntryPayload::Membership(membership.clone()),
        },
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
    ];
    for (index, command) in &commands {
        entries.push(Entry {
            log_id: log_id(1, *index),
            payload: EntryPayload::Normal(vec![command.clone()]),
        });
    }
    for entry in &entries {
        log.insert(entry.log_id.index.to_be_bytes(), json(entry))
            .unwrap();
    }
    let meta = journal.open_tree("meta").unwrap();
    meta.insert("vote", json(&Vote::new_committed(1, 1)))
        .unwrap();
    meta.insert("committed", json(&Some(log_id(1, 4)))).unwrap();
    journal.flush().unwrap();
    drop(journal);

    let db = sled::open(meta_dir).unwrap();
    let tree = db.open_tree("namespace").unwrap();
    let mut ns = Namespace::default();
    let stored_membership = StoredMembership::new(Some(log_id(0, 0)), membership);
    let mut snapshot = None;
    for (index, command) in &commands[..2] {
        ns.apply(command).result.unwrap();
        if *index == 2 {
            snapshot = Some(OldStoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(log_id(1, 2)),
                    last_membership: stored_membership.clone(),
                    snapshot_id: "1-1-2-1".into(),
                },
                data: json(&OldSnapshotData { image: ns.image() }),
            });
        }
    }
    let image = ns.image();
    assert_eq!(image.inodes.len(), 3, "root, /old, /old/a");
    for inode in &image.inodes {
        tree.insert(key(b"i:", inode.id), json::<Inode>(inode))
            .unwrap();
    }
    tree.insert("m:counters", json(&image.counters)).unwrap();
    tree.insert("m:mounts", json(&image.mounts)).unwrap();
    tree.insert("m:applied", json(&Some(log_id(1, 3)))).unwrap();
    tree.insert("m:membership", json(&stored_membership))
        .unwrap();
    tree.insert("m:snapshot", json(&snapshot.unwrap())).unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_dir_written_as_json_loads_and_goes_on_in_the_binary_format() {
    let data = tempfile::tempdir().unwrap();
    let rendered = curvine_fluid::config::render_standalone(
        &data.path().display().to_string(),
        toml_edit::DocumentMut::new(),
    )
    .unwrap();
    let config = rendered.to_config().unwrap();
    let (meta_dir, journal_dir) = (
        Path::new(&config.master.meta_dir).to_path_buf(),
        Path::new(&config.journal.journal_dir).to_path_buf(),
    );
    write_old_dirs(&meta_dir, &journal_dir);

    let (cluster, config) = Standalone::start_ephemeral(data.path(), |_| {})
        .await
        .expect("the master starts on the old dirs");
    let client = Client::new(&config).unwrap();
    for path in ["/old", "/old/a", "/old/b"] {
        client
            .stat(path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert!(
        meta_dir.join("raft-snapshot.bin").is_file(),
        "the old snapshot moved to the file"
    );
    client.mkdir("/new", false).await.unwrap();
    client
        .write_file("/new/c", b"written after the upgrade")
        .await
        .unwrap();
    cluster.master.raft().trigger().snapshot().await.unwrap();
    cluster
        .master
        .raft()
        .wait(Some(std::time::Duration::from_secs(30)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 5),
            "a new snapshot",
        )
        .await
        .unwrap();
    client
        .write_file("/new/d", b"after the snapshot")
        .await
        .unwrap();
    cluster.shutdown().await.unwrap();

    // The namespace's sled values are now written with the format byte.
    {
        let db = sled::open(&meta_dir).unwrap();
        let tree = db.open_tree("namespace").unwrap();
        let mut tagged = 0;
        for item in tree.scan_prefix(b"i:") {
            let (_, v) = item.unwrap();
            if v[0] == curvine_fluid::master::codec::BINCODE {
                tagged += 1;
            }
        }
        assert!(tagged >= 3, "new inodes are binary ({tagged})");
        assert!(tree.get("m:snapshot").unwrap().is_none());
    }

    let (cluster, config) = Standalone::start_ephemeral(data.path(), |_| {})
        .await
        .expect("the master restarts");
    let client = Client::new(&config).unwrap();
    for path in ["/old/a", "/old/b"] {
        client.stat(path).await.unwrap();
    }
    assert_eq!(
        client.stat("/new/c").await.unwrap().size,
        b"written after the upgrade".len() as u64
    );
    assert_eq!(
        client.stat("/new/d").await.unwrap().size,
        b"after the snapshot".len() as u64
    );
    let names: Vec<String> = client
        .list("/old")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    cluster.shutdown().await.unwrap();
}
