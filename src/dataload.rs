//! `curvine-fluid load`: Fluid's DataLoad (FLUID-CONTRACT §3). The pod gets only the
//! paths to load (`FLUID_DATALOAD_DATA_PATH`, `:`-joined) and no runtime config (its
//! masters are found by `config::discovery`); every file under the paths is read
//! through the workers, which checks each block is cached and
//! keeps it warm in the workers' LRU. Files of under-storage mounts are loaded instead:
//! each block's worker fetches it from the storage (no data comes back here), several
//! files at once, spread over the workers by block. With `FLUID_DATALOAD_METADATA=true`
//! the storage is listed again first. Any path that fails makes the exit code non-zero.

use crate::client::Client;
use crate::env::{EnvSnapshot, FLUID_DATALOAD_DATA_PATH, FLUID_DATALOAD_PATH_REPLICAS};
use crate::error::{Error, InputError};
use crate::fs_error::FsError;
use crate::rpc::pb::master::{self as pb, FileKind};
use crate::rpc::status::from_status;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// One path to load and the copies asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Dataset path.
    pub path: String,
    /// Replicas asked for.
    pub replicas: u32,
}

/// The targets from the environment, or from the command line when it names paths.
pub fn targets(env: &EnvSnapshot, args: &[String]) -> Result<Vec<Target>, InputError> {
    let (paths, from): (Vec<String>, String) = if args.is_empty() {
        let text = env.get(FLUID_DATALOAD_DATA_PATH).unwrap_or("/");
        (
            text.split(':').map(str::to_string).collect(),
            format!("env {FLUID_DATALOAD_DATA_PATH}"),
        )
    } else {
        (args.to_vec(), "the command line".to_string())
    };
    let replicas: Vec<&str> = env
        .get(FLUID_DATALOAD_PATH_REPLICAS)
        .map(|r| r.split(':').collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let path = path.trim();
        if path.is_empty() {
            continue;
        }
        if !path.starts_with('/') {
            return Err(InputError::new(
                format!("{path:?} is not a dataset path"),
                from.clone(),
                "give absolute paths in the dataset, e.g. /curvine/train",
            ));
        }
        let replicas = match replicas.get(i).map(|r| r.trim()).filter(|r| !r.is_empty()) {
            None => 1,
            Some(r) => r.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                InputError::new(
                    format!("replica count {r:?} is not a positive whole number"),
                    format!("env {FLUID_DATALOAD_PATH_REPLICAS}"),
                    "set the DataLoad target's replicas to 1 or more",
                )
            })?,
        };
        out.push(Target {
            path: path.to_string(),
            replicas,
        });
    }
    if out.is_empty() {
        return Err(InputError::new(
            "no path to load",
            from,
            "give the DataLoad at least one target path",
        ));
    }
    Ok(out)
}

/// What loading one target did.
#[derive(Debug, Default)]
struct Tally {
    files: u64,
    bytes: u64,
    failed: Vec<String>,
}

/// Loads every target; fails when any path or file could not be loaded.
pub async fn load(client: &Client, targets: &[Target], metadata: bool) -> Result<(), Error> {
    let start = Instant::now();
    let mounts = client.mounts().await?.mounts;
    let mut total = Tally::default();
    for target in targets {
        if target.replicas > 1 {
            warn!(
                path = %target.path,
                replicas = target.replicas,
                "this cache keeps one copy of each block; loading it once"
            );
        }
        let path = through_mounts(&target.path, &mounts);
        if path != target.path {
            info!(path = %target.path, source = %path, "path is a mount; loading its source");
        }
        let mut tally = Tally::default();
        if let Err(e) = load_tree(client, &path, metadata, &mut tally).await {
            tally.failed.push(format!("{}: {e}", target.path));
        }
        info!(
            path = %target.path,
            files = tally.files,
            bytes = tally.bytes,
            failed = tally.failed.len(),
            metadata,
            "path done"
        );
        total.files += tally.files;
        total.bytes += tally.bytes;
        total.failed.extend(tally.failed);
    }
    let secs = start.elapsed().as_secs_f64();
    info!(
        files = total.files,
        bytes = total.bytes,
        failed = total.failed.len(),
        seconds = format!("{secs:.1}"),
        mib_per_s = format!(
            "{:.1}",
            total.bytes as f64 / secs.max(1e-6) / (1 << 20) as f64
        ),
        "DataLoad finished"
    );
    if total.failed.is_empty() {
        return Ok(());
    }
    Err(Error::Role(format!(
        "DataLoad failed for {} file(s) or path(s): {}",
        total.failed.len(),
        total.failed.join("; ")
    )))
}

/// A dataset path with a linked mount's prefix replaced by its source directory.
pub fn through_mounts(path: &str, mounts: &[pb::MountEntry]) -> String {
    for m in mounts
        .iter()
        .filter(|m| m.path != m.target && m.path != "/")
    {
        if path == m.path {
            return m.target.clone();
        }
        if let Some(rest) = path.strip_prefix(&format!("{}/", m.path)) {
            return format!("{}/{rest}", m.target.trim_end_matches('/'));
        }
    }
    path.to_string()
}

/// Files loaded at once.
const FILES_AT_ONCE: usize = 8;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Loads a file or every file under a directory (links are not followed: a link's
/// target is loaded where it lives). `metadata`: list under storage again first.
async fn load_tree(
    client: &Client,
    root: &str,
    metadata: bool,
    tally: &mut Tally,
) -> Result<(), FsError> {
    let mut pending = vec![client.stat(root).await?];
    let mut files = Vec::new();
    while let Some(status) = pending.pop() {
        match status.kind() {
            FileKind::Directory => {
                let mut children = client.list_with(&status.path, metadata).await?;
                children.reverse();
                pending.extend(children);
            }
            FileKind::File => files.push(status.path),
            FileKind::Symlink => {
                info!(path = %status.path, target = %status.symlink_target, "link skipped")
            }
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice => {
                info!(path = %status.path, "special file skipped: it holds no data")
            }
        }
    }
    let count = files.len();
    let mut done = futures::stream::iter(files)
        .map(|path| async move {
            let result = load_file(client, &path).await;
            (path, result)
        })
        .buffer_unordered(FILES_AT_ONCE);
    let mut last_log = Instant::now();
    while let Some((path, result)) = done.next().await {
        match result {
            Ok(bytes) => {
                tally.files += 1;
                tally.bytes += bytes;
            }
            Err(e) => {
                warn!(path = %path, error = %e, "file not loaded");
                tally.failed.push(format!("{path}: {e}"));
            }
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            info!(
                root,
                files = tally.files,
                of = count,
                bytes = tally.bytes,
                "loading"
            );
        }
    }
    Ok(())
}

/// Loads a file: blocks of under storage are fetched by their workers; others are
/// read through the workers. Returns its size.
async fn load_file(client: &Client, path: &str) -> Result<u64, FsError> {
    let start = Instant::now();
    let mut located = client.locate(path).await?;
    let from_storage = located.blocks.iter().any(|b| b.ufs.is_some());
    let (read, fetched) = if from_storage {
        let mut fetched = 0;
        let mut read = 0;
        for i in 0..located.blocks.len() {
            let answer = match load_block(client, &located.blocks[i]).await {
                // A large file outlived its block tokens: fresh ones, once per block.
                Err(FsError::BlockToken(_)) => {
                    located = client.locate(path).await?;
                    let block = located.blocks.get(i).ok_or_else(|| {
                        FsError::Unavailable(format!("{path} changed while loading"))
                    })?;
                    load_block(client, block).await?
                }
                other => other?,
            };
            fetched += answer.fetched;
            read += answer.len;
        }
        (read, fetched)
    } else {
        (read_through(client, path).await?, 0)
    };
    let size = located.status.as_ref().map_or(read, |s| s.size);
    if read != size {
        return Err(FsError::Io(format!("loaded {read} of {size} bytes")));
    }
    let secs = start.elapsed().as_secs_f64().max(1e-6);
    info!(
        path = %path,
        bytes = read,
        fetched,
        mib_per_s = format!("{:.1}", read as f64 / secs / (1 << 20) as f64),
        "loaded"
    );
    Ok(read)
}

/// Has the worker of `block` fetch it from under storage (when not cached there).
async fn load_block(
    client: &Client,
    block: &pb::LocatedBlock,
) -> Result<crate::rpc::pb::worker::LoadBlockResponse, FsError> {
    let worker = block
        .worker
        .as_ref()
        .ok_or_else(|| FsError::Unavailable(block.unavailable.clone()))?;
    let req = crate::rpc::pb::worker::ReadBlockRequest {
        block_id: block.id,
        offset: 0,
        length: block.len,
        ufs: block.ufs.clone(),
        block_token: block.block_token.clone(),
    };
    client
        .worker(worker)?
        .load_block(req)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| from_status(&s))
}

/// Reads a whole file through the workers; returns the bytes read.
async fn read_through(client: &Client, path: &str) -> Result<u64, FsError> {
    let mut reader = client.open(path).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn targets_from_the_dataload_env() {
        let e = env(&[
            (FLUID_DATALOAD_DATA_PATH, "/imagenet/train:/imagenet/val"),
            (FLUID_DATALOAD_PATH_REPLICAS, "1:2"),
        ]);
        let t = targets(&e, &[]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[1].path.as_str(), t[1].replicas), ("/imagenet/val", 2));
        let t = targets(&env(&[]), &[]).unwrap();
        assert_eq!((t[0].path.as_str(), t[0].replicas), ("/", 1));
        assert!(targets(&env(&[(FLUID_DATALOAD_DATA_PATH, "train")]), &[]).is_err());
        let bad = env(&[
            (FLUID_DATALOAD_DATA_PATH, "/a"),
            (FLUID_DATALOAD_PATH_REPLICAS, "x"),
        ]);
        let err = targets(&bad, &[]).unwrap_err().to_string();
        assert!(err.contains(FLUID_DATALOAD_PATH_REPLICAS), "{err}");
        let t = targets(&env(&[]), &["/x".to_string()]).unwrap();
        assert_eq!(t[0].path, "/x");
    }

    #[test]
    fn linked_mounts_lead_to_their_source() {
        let m = vec![pb::MountEntry {
            path: "/curvine".into(),
            source: "curvine:///data".into(),
            target: "/data".into(),
            read_only: false,
            ufs: String::new(),
        }];
        assert_eq!(through_mounts("/curvine", &m), "/data");
        assert_eq!(through_mounts("/curvine/train", &m), "/data/train");
        assert_eq!(through_mounts("/curvinex", &m), "/curvinex");
        assert_eq!(through_mounts("/other", &m), "/other");
    }
}
