//! The soak's writers: each writes new files of random size and seeded content, one after
//! the other, through the FUSE mount (write, fsync, close) or the CLI (`fs put`, exit 0).
//! A file is recorded, with its seed and checksum, only once acknowledged; a failed
//! attempt is counted by kind and the writer goes on with a new name.

use crate::cluster::BIN;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most files one writer attempts (the writers also stop when the kills are over).
pub const MAX_FILES_PER_WRITER: u64 = 100_000;
/// Longest a CLI command may run before it is killed and counted as an error.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed attempt, so a writer does not spin through a failover.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How a file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the FUSE mount.
    Fuse,
    /// Through `curvine-fluid fs put`.
    Cli,
}

/// An acknowledged file: its cluster path and what it must read back as.
#[derive(Debug, Clone)]
pub struct Acked {
    /// Path in the cluster (`/soak/fuse0/f000012`).
    pub path: String,
    /// Length in bytes.
    pub size: usize,
    /// Seed of its content ([`content`]).
    pub seed: u64,
    /// [`checksum`] of its content.
    pub sum: u64,
    /// How it was written.
    pub via: Via,
}

/// What the writers did: the acknowledged files and the failed attempts by kind.
#[derive(Default)]
pub struct Tally {
    acked: Mutex<Vec<Acked>>,
    /// Kind -> (count, first message seen).
    errors: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    fn ack(&self, file: Acked) {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(file);
    }

    fn error(&self, kind: String, message: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let entry = errors.entry(kind).or_insert((0, message));
        entry.0 += 1;
    }

    /// Acknowledged files so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The acknowledged files, in order.
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Failed attempts by kind: (count, first message).
    pub fn errors(&self) -> BTreeMap<String, (u64, String)> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// `size` bytes of content from `seed`.
pub fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// FNV-1a over the bytes.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A file size: a quarter small (under 64 KiB), half up to one block (1 MiB), a quarter
/// over several blocks (up to 3.5 MiB).
fn file_size(rng: &mut Rng) -> usize {
    const KIB: u64 = 1024;
    let size = match rng.range(0, 4) {
        0 => rng.range(1, 64 * KIB),
        1 | 2 => rng.range(64 * KIB, 1024 * KIB),
        _ => rng.range(1024 * KIB, 3584 * KIB),
    };
    size as usize
}

/// One writer: its index, how it writes and where.
pub struct Writer<'a> {
    /// Writer number (part of its directory name and of its seed).
    pub index: u64,
    /// How it writes.
    pub via: Via,
    /// The run's seed.
    pub seed: u64,
    /// The FUSE mount (for [`Via::Fuse`]).
    pub mnt: &'a Path,
    /// The client config (for [`Via::Cli`]).
    pub conf: &'a Path,
    /// Scratch directory for local copies and CLI error output.
    pub scratch: &'a Path,
    /// Where results go.
    pub tally: &'a Tally,
    /// Set when the writers should stop.
    pub stop: &'a AtomicBool,
}

impl Writer<'_> {
    /// The cluster directory this writer fills.
    pub fn dir(&self) -> String {
        match self.via {
            Via::Fuse => format!("/soak/fuse{}", self.index),
            Via::Cli => format!("/soak/cli{}", self.index),
        }
    }

    /// Writes files until told to stop (at most [`MAX_FILES_PER_WRITER`]). Each attempt
    /// gets a line in `<scratch>/<fuse|cli><index>.log`: when it started, its path and
    /// size, and `ok` or the error.
    pub fn run(&self) {
        let name = self
            .dir()
            .rsplit('/')
            .next()
            .unwrap_or("writer")
            .to_string();
        let journal = self.scratch.join(format!("{name}.log"));
        let mut journal = std::fs::File::create(&journal)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", journal.display()));
        let epoch = Instant::now();
        let mut rng = Rng::new(self.seed ^ (0xA5A5_0000 + self.index));
        for n in 0..MAX_FILES_PER_WRITER {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let path = format!("{}/f{n:06}", self.dir());
            let size = file_size(&mut rng);
            let seed = rng.next();
            let data = content(size, seed);
            let began = epoch.elapsed().as_millis();
            let result = match self.via {
                Via::Fuse => self.write_fuse(&path, &data),
                Via::Cli => self.write_cli(&path, &data),
            };
            let outcome = match &result {
                Ok(()) => "ok".to_string(),
                Err((kind, message)) => format!("{kind}: {message}"),
            };
            let _ = writeln!(journal, "{began} ms {path} {size} B {outcome}");
            match result {
                Ok(()) => self.tally.ack(Acked {
                    path,
                    size,
                    seed,
                    sum: checksum(&data),
                    via: self.via,
                }),
                Err((kind, message)) => {
                    self.tally.error(kind, message);
                    std::thread::sleep(ERROR_PAUSE);
                }
            }
        }
    }

    /// create, write, fsync, close: acknowledged when all four succeed.
    fn write_fuse(&self, path: &str, data: &[u8]) -> Result<(), (String, String)> {
        let local = self.mnt.join(path.trim_start_matches('/'));
        let fail = |step: &str, e: std::io::Error| {
            let errno = e
                .raw_os_error()
                .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
                .unwrap_or_else(|| format!("{:?}", e.kind()));
            (
                format!("fuse {step}: {errno}"),
                format!("{}: {e}", local.display()),
            )
        };
        let mut file = std::fs::File::create(&local).map_err(|e| fail("create", e))?;
        file.write_all(data).map_err(|e| fail("write", e))?;
        file.sync_all().map_err(|e| fail("fsync", e))?;
        // close(2) reports what the last flush found; dropping a File would ignore it.
        nix::unistd::close(file)
            .map_err(|errno| fail("close", std::io::Error::from_raw_os_error(errno as i32)))?;
        Ok(())
    }

    /// `fs put` of a local copy: acknowledged on exit 0.
    fn write_cli(&self, path: &str, data: &[u8]) -> Result<(), (String, String)> {
        let local = self.scratch.join(format!("cli{}.bin", self.index));
        std::fs::write(&local, data)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", local.display()));
        let err = self.scratch.join(format!("cli{}.err", self.index));
        run_cli(
            self.conf,
            &["fs", "put", &local.to_string_lossy(), path],
            &err,
        )
    }
}

/// Runs the CLI with `conf`, stderr to `err_file`, killed after [`CLI_TIMEOUT`]. On
/// failure: (kind, the error line).
pub fn run_cli(conf: &Path, args: &[&str], err_file: &Path) -> Result<(), (String, String)> {
    let err = std::fs::File::create(err_file)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", err_file.display()));
    let mut child = Command::new(BIN)
        .arg("--conf")
        .arg(conf)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the CLI") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err((
                "cli: no exit within 120 s".into(),
                format!("curvine-fluid {}", args.join(" ")),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(err_file).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("error"))
        .or_else(|| text.lines().last())
        .unwrap_or("")
        .to_string();
    Err((cli_kind(status.code(), &line), line))
}

/// The kind of a CLI failure, from its exit code and error line.
fn cli_kind(code: Option<i32>, line: &str) -> String {
    let l = line.to_lowercase();
    let what = if l.contains("already exists") {
        "already exists"
    } else if l.contains("no master leader") {
        "no master leader in time"
    } else if l.contains("worker") {
        "worker"
    } else if l.contains("not found") || l.contains("no such file") {
        "not found"
    } else {
        "other"
    };
    match code {
        Some(c) => format!("cli exit {c}: {what}"),
        None => format!("cli killed by a signal: {what}"),
    }
}

/// The scratch directory of the writers.
pub fn scratch_dir(work: &Path) -> PathBuf {
    let dir = work.join("scratch");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}
