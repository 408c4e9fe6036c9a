//! Reading back every acknowledged file once the cluster settled: all through the client
//! library, and every fourth one also the other way (a CLI-written file through the FUSE
//! mount, a FUSE-written one through `fs get`). A file found byte-exact every way it was
//! read counts as found; anything else is a loss, with the reason.

use crate::writers::{checksum, content, run_cli, Acked, Via};
use curvine_fluid::client::Client;
use std::path::Path;
use std::time::Duration;

/// Tries per read: a read failing after the cluster settled is tried again a little later.
const READ_TRIES: u32 = 3;

/// The result of reading back.
pub struct Outcome {
    /// Files found byte-exact.
    pub exact: usize,
    /// Reads done through the FUSE mount and through the CLI (besides the client library).
    pub fuse_reads: usize,
    /// Reads done through the CLI.
    pub cli_reads: usize,
    /// Files missing or different: (path, why).
    pub lost: Vec<(String, String)>,
}

/// Reads back `files` through `client`, the mount `mnt` and the CLI with `conf`.
pub fn verify(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    files: &[Acked],
    mnt: &Path,
    conf: &Path,
    scratch: &Path,
) -> Outcome {
    let mut out = Outcome {
        exact: 0,
        fuse_reads: 0,
        cli_reads: 0,
        lost: Vec::new(),
    };
    for (n, file) in files.iter().enumerate() {
        let mut problems = Vec::new();
        let library = retried(|| {
            rt.block_on(client.read_file(&file.path))
                .map_err(|e| e.to_string())
        });
        if let Some(why) = mismatch("client library", library, file) {
            problems.push(why);
        }
        if n % 4 == 0 {
            let (way, read) = match file.via {
                Via::Cli => {
                    out.fuse_reads += 1;
                    let local = mnt.join(file.path.trim_start_matches('/'));
                    (
                        "FUSE mount",
                        retried(|| std::fs::read(&local).map_err(|e| e.to_string())),
                    )
                }
                Via::Fuse => {
                    out.cli_reads += 1;
                    ("fs get", retried(|| cli_get(conf, &file.path, scratch)))
                }
            };
            if let Some(why) = mismatch(way, read, file) {
                problems.push(why);
            }
        }
        if problems.is_empty() {
            out.exact += 1;
        } else {
            out.lost.push((file.path.clone(), problems.join("; ")));
        }
    }
    out
}

/// `read` until it succeeds, at most [`READ_TRIES`] times, a second apart.
fn retried(mut read: impl FnMut() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    let mut last = String::new();
    for attempt in 0..READ_TRIES {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match read() {
            Ok(data) => return Ok(data),
            Err(e) => last = e,
        }
    }
    Err(format!("unreadable after {READ_TRIES} tries: {last}"))
}

/// Why what was read is not the acknowledged file, if it is not.
fn mismatch(way: &str, read: Result<Vec<u8>, String>, file: &Acked) -> Option<String> {
    let data = match read {
        Ok(data) => data,
        Err(e) => return Some(format!("{way}: {e}")),
    };
    if data.len() != file.size {
        return Some(format!(
            "{way}: {} bytes, {} were acknowledged",
            data.len(),
            file.size
        ));
    }
    if checksum(&data) != file.sum || data != content(file.size, file.seed) {
        let at = data
            .iter()
            .zip(content(file.size, file.seed))
            .position(|(a, b)| *a != b)
            .unwrap_or(0);
        return Some(format!("{way}: content differs from byte {at}"));
    }
    None
}

/// `fs get` of `path` into a scratch file; its bytes.
fn cli_get(conf: &Path, path: &str, scratch: &Path) -> Result<Vec<u8>, String> {
    let local = scratch.join("get.bin");
    let _ = std::fs::remove_file(&local);
    run_cli(
        conf,
        &["fs", "get", path, &local.to_string_lossy()],
        &scratch.join("get.err"),
    )
    .map_err(|(_, line)| line)?;
    std::fs::read(&local).map_err(|e| format!("{}: {e}", local.display()))
}
