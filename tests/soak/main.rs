//! Crash soak: three masters, two workers and a FUSE client as real processes on
//! loopback; four writers (two through the FUSE mount, two through the CLI) write
//! checksummed files while the leading master is SIGKILLed again and again (and a worker
//! now and then), each killed process restarted. At the end every acknowledged file is
//! read back: the soak fails if one is missing or differs. It prints the acknowledged
//! writes, those found byte-exact, the failover times (kill -> a new leader served a
//! metadata write) and the writers' errors by kind.
//!
//! The defaults are the short form CI runs (3 leader kills, 1 worker kill);
//! `scripts/soak.sh` runs the long form (20 and 3). Environment: `SOAK_LEADER_KILLS`,
//! `SOAK_WORKER_KILLS`, `SOAK_SEED`, `SOAK_DIR` (where the work directory goes). Needs
//! root and /dev/fuse: without them it fails, it never skips.

mod cluster;
mod kills;
mod verify;
mod writers;

use cluster::{Cluster, MASTERS, WORKERS};
use curvine_fluid::client::Client;
use curvine_fluid::config::ClusterConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use writers::{Tally, Via, Writer};

/// What one run does, from the environment.
struct Settings {
    leader_kills: u64,
    worker_kills: u64,
    seed: u64,
    parent: PathBuf,
}

/// A whole number from `name`, or `default` when unset; a bad value is one error line.
fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => v.trim().parse().map_err(|_| {
            format!("{name}={v:?} is not a whole number: set it to e.g. {default}, or unset it")
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "{name} is not UTF-8: set it to a whole number such as {default}, or unset it"
        )),
    }
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            leader_kills: env_number("SOAK_LEADER_KILLS", 3)?,
            worker_kills: env_number("SOAK_WORKER_KILLS", 1)?,
            seed: env_number("SOAK_SEED", 1)?,
            parent: std::env::var_os("SOAK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        })
    }
}

/// What a run needs of the machine: root and /dev/fuse (for the FUSE mount).
fn check_machine() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the crash soak mounts FUSE and needs root: run it as root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("the crash soak needs /dev/fuse: load the fuse module (modprobe fuse) or run the container with --device /dev/fuse".into());
    }
    Ok(())
}

fn main() {
    // Like a libtest binary: `--list` names the test, a filter that does not match it
    // runs nothing (and says so).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("soak: test");
        return;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"soak".contains(filter.as_str()) {
            println!("soak: filtered out by {filter:?} (0 tests run)");
            return;
        }
    }
    let settings = Settings::from_env().and_then(|s| check_machine().map(|()| s));
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let work = tempfile::Builder::new()
        .prefix("curvine-soak.")
        .tempdir_in(&settings.parent)
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a directory in {}: {e}",
                settings.parent.display()
            )
        })
        .keep();
    println!(
        "soak: seed {}, {} leader kills, {} worker kills, {MASTERS} masters, {WORKERS} workers, work dir {}",
        settings.seed,
        settings.leader_kills,
        settings.worker_kills,
        work.display()
    );
    // The work directory (configs, logs) stays when the run fails.
    let passed = run(&settings, &work);
    if passed {
        let _ = std::fs::remove_dir_all(&work);
        println!("soak: ok");
    } else {
        println!("soak: FAILED (logs in {})", work.display());
        std::process::exit(1);
    }
}

/// Sets `stop` when dropped, so the writers end even when the killer panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One soak: start, write through the kills, read back, print; whether nothing was lost.
fn run(settings: &Settings, work: &Path) -> bool {
    let started = Instant::now();
    let mut cluster = Cluster::new(work);
    for i in 0..MASTERS {
        cluster.start_master(i);
    }
    for j in 0..WORKERS {
        cluster.start_worker(j);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let text = std::fs::read_to_string(&cluster.client_conf).expect("read the client config");
    let config = ClusterConfig::from_toml(&text, &cluster.client_conf.display().to_string())
        .expect("the client config parses");
    let client = Client::new(&config).expect("a cluster client");
    kills::wait_whole(&rt, &client, &cluster, Duration::from_secs(60));
    cluster.mount();
    for dir in [
        "/soak/fuse0",
        "/soak/fuse1",
        "/soak/cli0",
        "/soak/cli1",
        "/soak/probe",
    ] {
        rt.block_on(client.mkdir(dir, true))
            .unwrap_or_else(|e| panic!("mkdir {dir}: {e}"));
    }
    println!(
        "soak: cluster up after {} ms",
        started.elapsed().as_millis()
    );

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let scratch = writers::scratch_dir(work);
    let (mnt, conf) = (cluster.mnt.clone(), cluster.client_conf.clone());
    let writers: Vec<Writer> = [(0, Via::Fuse), (1, Via::Fuse), (0, Via::Cli), (1, Via::Cli)]
        .into_iter()
        .map(|(index, via)| Writer {
            index,
            via,
            seed: settings.seed,
            mnt: &mnt,
            conf: &conf,
            scratch: &scratch,
            tally: &tally,
            stop: &stop,
        })
        .collect();
    let record = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for w in &writers {
            s.spawn(|| w.run());
        }
        let record = kills::run(
            &mut cluster,
            &rt,
            &client,
            &tally,
            kills::Plan {
                leader_kills: settings.leader_kills,
                worker_kills: settings.worker_kills,
                seed: settings.seed,
            },
        );
        // A last stretch of writes on the whole cluster, then the writers stop.
        std::thread::sleep(Duration::from_secs(2));
        record
    });
    let write_secs = started.elapsed().as_secs_f64();

    kills::wait_whole(&rt, &client, &cluster, Duration::from_secs(60));
    let files = tally.acked();
    let outcome = verify::verify(&rt, &client, &files, &mnt, &conf, &scratch);
    drop(cluster);

    let fuse = files.iter().filter(|f| f.via == Via::Fuse).count();
    println!();
    println!("== crash soak: seed {} ==", settings.seed);
    println!(
        "leader kills {}, worker kills {}, run {:.0} s",
        record.failovers.len(),
        record.worker_restarts.len(),
        write_secs
    );
    println!(
        "acknowledged writes: {} ({fuse} through FUSE, {} through the CLI; {} MiB)",
        files.len(),
        files.len() - fuse,
        files.iter().map(|f| f.size).sum::<usize>() >> 20
    );
    println!(
        "found byte-exact:    {} (every file through the client library; {} also through FUSE, {} also through fs get)",
        outcome.exact, outcome.fuse_reads, outcome.cli_reads
    );
    println!("lost:                {}", outcome.lost.len());
    for (path, why) in &outcome.lost {
        println!("  LOST {path}: {why}");
    }
    println!(
        "failover (leader SIGKILLed -> a new leader served a mkdir): {}",
        kills::summary(&record.failovers)
    );
    println!(
        "worker restart (started -> registered again): {}",
        kills::summary(&record.worker_restarts)
    );
    let errors = tally.errors();
    println!(
        "writer errors: {} (attempts that failed; none of them was acknowledged)",
        errors.values().map(|(n, _)| n).sum::<u64>()
    );
    for (kind, (count, first)) in &errors {
        println!("  {count:>5}  {kind}  (first: {first})");
    }
    if files.is_empty() {
        println!("no write was acknowledged: the soak proved nothing");
    }
    outcome.lost.is_empty() && outcome.exact == files.len() && !files.is_empty()
}
