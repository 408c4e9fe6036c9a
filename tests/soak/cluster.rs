//! The soak's cluster: three masters, two workers and one FUSE client as real
//! `curvine-fluid` processes on loopback, each with its own config, directories and log
//! under the work directory. Masters and workers are SIGKILLed and restarted by PID;
//! dropping the cluster stops every process it started and removes the mount.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_curvine-fluid");
/// Masters in the cluster.
pub const MASTERS: usize = 3;
/// Workers in the cluster.
pub const WORKERS: usize = 2;

/// The ports of one master.
#[derive(Debug, Clone, Copy)]
struct MasterPorts {
    rpc: u16,
    journal: u16,
    web: u16,
}

/// The ports of one worker.
#[derive(Debug, Clone, Copy)]
struct WorkerPorts {
    rpc: u16,
    web: u16,
}

/// The running processes and where their configs and logs are.
pub struct Cluster {
    dir: PathBuf,
    masters: Vec<Option<Child>>,
    workers: Vec<Option<Child>>,
    fuse: Option<Child>,
    worker_ports: Vec<WorkerPorts>,
    /// Where the FUSE client mounts the cluster's root.
    pub mnt: PathBuf,
    /// A config with only the `[client]` section (for the CLI and the client library).
    pub client_conf: PathBuf,
}

/// `count` distinct free loopback ports (all bound at once, then released).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

impl Cluster {
    /// Writes the configs under `dir` (nothing is started yet).
    pub fn new(dir: &Path) -> Cluster {
        let ports = free_ports(3 * MASTERS + 2 * WORKERS + 1);
        let master_ports: Vec<MasterPorts> = (0..MASTERS)
            .map(|i| MasterPorts {
                rpc: ports[3 * i],
                journal: ports[3 * i + 1],
                web: ports[3 * i + 2],
            })
            .collect();
        let worker_ports: Vec<WorkerPorts> = (0..WORKERS)
            .map(|j| WorkerPorts {
                rpc: ports[3 * MASTERS + 2 * j],
                web: ports[3 * MASTERS + 2 * j + 1],
            })
            .collect();
        let fuse_web = ports[3 * MASTERS + 2 * WORKERS];
        let d = dir.display();
        let journal_addrs = master_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{{ id = {}, hostname = \"127.0.0.1\", port = {} }}",
                    i + 1,
                    p.journal
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let master_addrs = master_ports
            .iter()
            .map(|p| format!("{{ hostname = \"127.0.0.1\", port = {} }}", p.rpc))
            .collect::<Vec<_>>()
            .join(", ");
        // Blocks of 1 MiB (the smallest), so a file of a few MiB spans several; clients
        // keep retrying through a failover for 30 s.
        let client = format!(
            "[client]\nmaster_addrs = [{master_addrs}]\nblock_size = \"1MB\"\n\
             rpc_timeout_ms = 5000\nconn_timeout_ms = 1000\nrpc_retry_max_duration_ms = 30000\n"
        );
        let head = "cluster_id = \"soak\"\n";
        // Heartbeats every 200 ms; a worker not heard from for 3 s gets no new blocks.
        let timing = "heartbeat_interval = \"200ms\"\nworker_lost_interval = \"3s\"\n";
        for (i, p) in master_ports.iter().enumerate() {
            write(
                &dir.join(format!("master-{i}.toml")),
                &format!(
                    "{head}[master]\nhostname = \"127.0.0.1\"\nrpc_port = {}\nweb_port = {}\n\
                     meta_dir = \"{d}/m{i}/meta\"\n{timing}\
                     [journal]\nhostname = \"127.0.0.1\"\nrpc_port = {}\n\
                     journal_dir = \"{d}/m{i}/journal\"\njournal_addrs = [{journal_addrs}]\n{client}",
                    p.rpc, p.web, p.journal
                ),
            );
        }
        for (j, p) in worker_ports.iter().enumerate() {
            write(
                &dir.join(format!("worker-{j}.toml")),
                &format!(
                    "{head}[master]\n{timing}[worker]\nhostname = \"127.0.0.1\"\nrpc_port = {}\n\
                     web_port = {}\ndata_dir = [\"[DISK]{d}/w{j}\"]\n\
                     [journal]\njournal_addrs = [{journal_addrs}]\n{client}",
                    p.rpc, p.web
                ),
            );
        }
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).expect("create the mount point");
        write(
            &dir.join("fuse.toml"),
            &format!(
                "{head}{client}[fuse]\nmnt_path = \"{}\"\nweb_port = {fuse_web}\n",
                mnt.display()
            ),
        );
        let client_conf = dir.join("client.toml");
        write(&client_conf, &format!("{head}{client}"));
        Cluster {
            dir: dir.to_path_buf(),
            masters: (0..MASTERS).map(|_| None).collect(),
            workers: (0..WORKERS).map(|_| None).collect(),
            fuse: None,
            worker_ports,
            mnt,
            client_conf,
        }
    }

    /// Starts `curvine-fluid --conf <name>.toml <args>`, output appended to `<name>.log`.
    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("open the process log");
        Command::new(BIN)
            .arg("--conf")
            .arg(self.dir.join(format!("{name}.toml")))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(std::env::var("SOAK_LOG").map(|filter| ("CURVINE_LOG", filter)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} for {name}: {e}"))
    }

    /// Starts master `i` (0-based) with its directories as they are.
    pub fn start_master(&mut self, i: usize) {
        assert!(self.masters[i].is_none(), "master-{i} runs already");
        self.masters[i] = Some(self.spawn(&format!("master-{i}"), &["master", "start"]));
    }

    /// SIGKILLs master `i`.
    pub fn kill_master(&mut self, i: usize) {
        kill(self.masters[i].take(), &format!("master-{i}"));
    }

    /// Starts worker `j` (0-based) on its data directory as it is.
    pub fn start_worker(&mut self, j: usize) {
        assert!(self.workers[j].is_none(), "worker-{j} runs already");
        self.workers[j] = Some(self.spawn(&format!("worker-{j}"), &["worker", "start"]));
    }

    /// SIGKILLs worker `j`.
    pub fn kill_worker(&mut self, j: usize) {
        kill(self.workers[j].take(), &format!("worker-{j}"));
    }

    /// Whether worker `j` answers `/healthz` with 200 (it registered with a leader).
    pub fn worker_healthy(&self, j: usize) -> bool {
        http_status(self.worker_ports[j].web, "/healthz") == Some(200)
    }

    /// Starts the FUSE client and waits (at most 60 s) until the mount answers.
    pub fn mount(&mut self) {
        assert!(self.fuse.is_none(), "the FUSE client runs already");
        let mut child = self.spawn("fuse", &["client", "start"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if is_mounted(&self.mnt) && std::fs::read_dir(&self.mnt).is_ok() {
                self.fuse = Some(child);
                return;
            }
            if let Some(status) = child.try_wait().expect("wait for the FUSE client") {
                panic!(
                    "the FUSE client exited {status} before mounting {} (log: {})",
                    self.mnt.display(),
                    self.dir.join("fuse.log").display()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no mount at {} within 60 s (log: {})",
                    self.mnt.display(),
                    self.dir.join("fuse.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the FUSE client with SIGTERM (it unmounts), SIGKILL after 20 s, then removes
    /// a mount left behind.
    fn unmount(&mut self) {
        if let Some(mut child) = self.fuse.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.unmount();
        for (j, w) in self.workers.iter_mut().enumerate() {
            kill(w.take(), &format!("worker-{j}"));
        }
        for (i, m) in self.masters.iter_mut().enumerate() {
            kill(m.take(), &format!("master-{i}"));
        }
    }
}

/// SIGKILLs a child we started (by its PID) and reaps it.
fn kill(child: Option<Child>, name: &str) {
    if let Some(mut child) = child {
        if let Err(e) = child.kill() {
            eprintln!("soak: cannot SIGKILL {name} (pid {}): {e}", child.id());
        }
        let _ = child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Whether a `fuse.curvinefs` file system is mounted at `mnt`.
pub fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mnt = mnt.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(mnt.as_ref()) && l.contains(" - fuse.curvinefs "))
}

/// A plain HTTP/1.0 GET on loopback: the whole response, or `None` when nobody answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
