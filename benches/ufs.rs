//! Under-storage benchmark helper, run by `scripts/bench-ufs.sh`: the storage read (and
//! written) straight, with the client the product itself uses (`curvine_fluid::ufs::Ufs`,
//! opendal), as the baseline for reads through the cache.
//!
//! The storage is `mounts[0]` of the Fluid runtime config named by `BENCH_UFS_RUNTIME_JSON`
//! (its `mountPoint`, `options` and `encryptOptions`, as `mount-ufs` reads them). Commands
//! (arguments beginning with `--`, such as the `--bench` cargo adds, are ignored):
//!
//! - `put KEY BYTES`: writes BYTES pseudo-random bytes as the object KEY (relative to the
//!   mount) in 8 MiB writes through `Ufs::writer` (an S3 multipart upload), so the server
//!   keeps the object's ETag as a real S3 does.
//! - `read KEY [PARTS]`: reads KEY whole in consecutive ranges of `BENCH_UFS_RANGE` bytes
//!   (8 MiB), once with `Ufs::read_range` (one GET per range, one after the other) and once
//!   with `Ufs::read_range_parallel` (each range as PARTS GETs at once, default 4); the
//!   page cache is dropped before each pass when this runs as root. Prints
//!   `RESULT <name> <MiB/s>` lines for the script.

use bytes::Bytes;
use curvine_fluid::ufs::{Ufs, UfsSpec};
use std::collections::BTreeMap;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

/// What went wrong, for the one line printed before exiting 1.
type Failure = String;

fn env_u64(name: &str, default: u64) -> Result<u64, Failure> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// A map of strings at `key` of the mount (absent: empty).
fn strings(mount: &serde_json::Value, key: &str) -> Result<BTreeMap<String, String>, Failure> {
    let Some(object) = mount.get(key) else {
        return Ok(BTreeMap::new());
    };
    let object = object
        .as_object()
        .ok_or_else(|| format!("mounts[0].{key} is not an object"))?;
    object
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("mounts[0].{key}.{k} is not a string"))
        })
        .collect()
}

/// The storage of mounts[0] of the runtime config.
fn open() -> Result<Ufs, Failure> {
    let file = std::env::var("BENCH_UFS_RUNTIME_JSON")
        .map_err(|_| "set BENCH_UFS_RUNTIME_JSON to a runtime config with mounts[0]".to_string())?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let mount = json
        .pointer("/mounts/0")
        .ok_or_else(|| format!("{file} has no mounts[0]"))?;
    let mount_point = mount
        .get("mountPoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{file}: mounts[0].mountPoint is not a string"))?;
    let (spec, warnings) = UfsSpec::from_fluid(
        mount_point,
        &strings(mount, "options")?,
        &strings(mount, "encryptOptions")?,
    )?;
    for w in warnings {
        eprintln!("bench-ufs: warning: {w}");
    }
    Ufs::open(&spec).map_err(|e| e.to_string())
}

/// Drops the page cache (root only): each pass then reads from the server's disk.
fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// `len` bytes of xorshift output, different for every `seed`.
fn pseudo_random(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn put(ufs: &Ufs, key: &str, bytes: u64) -> Result<(), Failure> {
    const CHUNK: u64 = 8 << 20;
    let start = Instant::now();
    let mut writer = ufs.writer(key).await.map_err(|e| e.to_string())?;
    // Each key its own bytes: no two objects share content (or an ETag).
    let key_seed = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut written = 0;
    while written < bytes {
        let len = CHUNK.min(bytes - written);
        let chunk = pseudo_random(len as usize, key_seed ^ (written / CHUNK + 1));
        writer.write(chunk).await.map_err(|e| e.to_string())?;
        written += len;
    }
    let entry = writer.finish().await.map_err(|e| e.to_string())?;
    if entry.size != bytes {
        return Err(format!(
            "{key}: wrote {bytes} bytes, the storage has {}",
            entry.size
        ));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "put {key}: {bytes} bytes in {secs:.2} s ({:.1} MiB/s), etag {:?}",
        bytes as f64 / MIB / secs,
        entry.etag
    );
    Ok(())
}

/// One pass over the object in `range`-byte reads of `parts` parts each; MiB/s.
async fn pass(
    ufs: &Ufs,
    key: &str,
    size: u64,
    etag: &str,
    range: u64,
    parts: usize,
) -> Result<f64, Failure> {
    let start = Instant::now();
    let mut offset = 0;
    while offset < size {
        let len = range.min(size - offset);
        let data = if parts == 1 {
            ufs.read_range(key, offset, len, etag).await
        } else {
            ufs.read_range_parallel(key, offset, len, etag, parts).await
        }
        .map_err(|e| e.to_string())?;
        if data.len() as u64 != len {
            return Err(format!(
                "{key}: {} bytes at {offset}, asked {len}",
                data.len()
            ));
        }
        offset += len;
    }
    Ok(size as f64 / MIB / start.elapsed().as_secs_f64())
}

async fn read(ufs: &Ufs, key: &str, parts: usize) -> Result<(), Failure> {
    let range = env_u64("BENCH_UFS_RANGE", 8 << 20)?.max(1);
    let entry = ufs
        .stat(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{key} is not in the storage"))?;
    println!(
        "read {key}: {} bytes, etag {:?}, {} MiB ranges, page cache dropped: {}",
        entry.size,
        entry.etag,
        range >> 20,
        drop_caches()
    );
    let seq = pass(ufs, key, entry.size, &entry.etag, range, 1).await?;
    println!("RESULT direct_seq {seq:.1}");
    drop_caches();
    let par = pass(ufs, key, entry.size, &entry.etag, range, parts).await?;
    println!("RESULT direct_parallel {par:.1}");
    Ok(())
}

async fn run(args: &[String]) -> Result<(), Failure> {
    let usage = "usage: ufs put KEY BYTES | ufs read KEY [PARTS]";
    let ufs = open()?;
    match args {
        [cmd, key, bytes] if cmd == "put" => {
            let bytes = bytes
                .parse()
                .map_err(|_| format!("BYTES {bytes:?}: {usage}"))?;
            put(&ufs, key, bytes).await
        }
        [cmd, key, rest @ ..] if cmd == "read" && rest.len() <= 1 => {
            let parts = match rest.first() {
                Some(p) => p.parse().map_err(|_| format!("PARTS {p:?}: {usage}"))?,
                None => 4,
            };
            read(&ufs, key, parts).await
        }
        _ => Err(usage.to_string()),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Err(e) = run(&args).await {
        eprintln!("bench-ufs: {e}");
        std::process::exit(1);
    }
}
