//! The FUSE client: mounts a directory of the cluster (`fuse.fs_path`) at `fuse.mnt_path`
//! with fuser and serves it until a signal, then unmounts cleanly.
//!
//! - [`mount_table`]: what sits at the target; stale-mount recovery; `umount`.
//! - [`inodes`]: kernel inode numbers and the cluster paths behind them.
//! - [`attr`]: file status to kernel attributes, errors to errno.
//! - [`ops`]: the file system operations, as methods answering `Result<_, Errno>`.
//! - [`fs`]: fuser's callbacks: each runs an operation and replies with its result.
//! - [`handles`]: the open file and directory handles, and the files open for writing.
//! - [`read`], [`write`](mod@write): the per-file tasks behind reads and writes;
//!   [`patch`] the blocks a write inside a file rewrites (block-level copy-on-write).
//! - [`readahead`]: the kernel's read-ahead window of the mount.
//! - [`health`]: the client's `/healthz` (the mount answers) on `fuse.web_port`.

pub mod attr;
pub mod fs;
pub mod handles;
pub mod health;
pub mod inodes;
pub mod mount_table;
pub mod ops;
pub mod page_cache;
pub mod patch;
pub mod read;
pub mod readahead;
pub mod write;

use crate::client::Client;
use crate::config::{ClusterConfig, FuseConfig};
use crate::fs_error::FsError;
use fs::CurvineFs;
use fuser::{Config, MountOption, SessionACL};
use inodes::{Inodes, RootEntry};
use ops::{FsOptions, Ops};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The file system type shown by `mount` and `df -T`: `fuse.curvinefs`.
pub const SUBTYPE: &str = "curvinefs";

/// Why the mount failed.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    /// The target could not be prepared or mounted.
    #[error("cannot mount at {path}: {why}")]
    Mount {
        /// The mount target.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The cluster refused or could not be reached.
    #[error("cluster: {0}")]
    Cluster(#[from] FsError),
}

/// A live mount.
pub struct Mounted {
    path: PathBuf,
    ops: Arc<Ops>,
    /// Set when fusermount3 made the mount and must undo it.
    unmounter: Option<fuser::SessionUnmounter>,
    session: std::thread::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

/// A `fuse.fuse_opts` entry without its `-o` prefix.
fn option_text(raw: &str) -> &str {
    raw.trim().trim_start_matches("-o").trim()
}

/// Whether the kernel takes this option (the rest are libfuse-only, or always set).
fn is_kernel_option(opt: &str) -> bool {
    matches!(
        opt,
        "ro" | "rw" | "noatime" | "atime" | "noexec" | "exec" | "sync" | "async" | "dirsync"
    ) || opt.starts_with("max_read=")
}

/// The kernel mount options of `fuse.fuse_opts`, each once.
pub fn kernel_options(fuse: &FuseConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for opt in fuse.fuse_opts.iter().map(|raw| option_text(raw)) {
        if is_kernel_option(opt) && !out.iter().any(|o| o == opt) {
            out.push(opt.to_string());
        }
    }
    out
}

/// The `fuse.fuse_opts` entries the mount ignores: libfuse-only options whose effect the
/// client has its own keys for (`allow_other` and `default_permissions` are always set).
pub fn ignored_options(fuse: &FuseConfig) -> Vec<&str> {
    fuse.fuse_opts
        .iter()
        .map(|raw| option_text(raw))
        .filter(|o| !o.is_empty() && !is_kernel_option(o))
        .filter(|o| *o != "allow_other" && *o != "default_permissions")
        .collect()
}

/// Whether the mount is read-only: `fuse.readonly`, or `ro` among `fuse.fuse_opts`.
pub fn is_readonly(fuse: &FuseConfig) -> bool {
    fuse.readonly || kernel_options(fuse).iter().any(|o| o == "ro")
}

/// Threads reading FUSE requests: `fuse.io_threads`, at most two per core. They only
/// parse and hand requests to the async runtime, so more would only contend for
/// /dev/fuse (measured: 32 threads wrote 1 GiB at 334 MiB/s where 2 threads did 486 MiB/s
/// on 2 cores).
pub fn reader_threads(fuse: &FuseConfig) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    fuse.io_threads.clamp(1, 2 * cores)
}

/// fuser's session settings: threads reading requests, and the mount options used when
/// mounting through fusermount3 (without CAP_SYS_ADMIN).
pub fn session_config(fuse: &FuseConfig) -> Config {
    let mut options = vec![
        MountOption::FSName("curvine".into()),
        MountOption::Subtype(SUBTYPE.into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        if is_readonly(fuse) {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    for opt in kernel_options(fuse) {
        let o = match opt.as_str() {
            "noatime" => MountOption::NoAtime,
            "noexec" => MountOption::NoExec,
            "sync" => MountOption::Sync,
            "dirsync" => MountOption::DirSync,
            "ro" | "rw" | "atime" | "exec" | "async" => continue,
            other => MountOption::CUSTOM(other.to_string()),
        };
        if !options.contains(&o) {
            options.push(o);
        }
    }
    let mut config = Config::default();
    config.mount_options = options;
    // allow_other: application pods (other users, other containers) see the mount.
    config.acl = SessionACL::All;
    let threads = reader_threads(fuse);
    config.n_threads = Some(threads);
    config.clone_fd = threads > 1;
    config
}

/// The kernel caches and modes of `[fuse]`.
pub fn fs_options(fuse: &FuseConfig) -> FsOptions {
    FsOptions {
        attr_ttl: Duration::from_millis(fuse.attr_timeout_ms),
        entry_ttl: Duration::from_millis(fuse.entry_timeout_ms),
        negative_ttl: Duration::from_millis(fuse.negative_timeout_ms),
        readonly: is_readonly(fuse),
        direct_io: fuse.direct_io,
        write_back_cache: fuse.write_back_cache,
        kernel_cache: fuse.kernel_cache,
    }
}

/// The mounted directory of the cluster: created when missing (the cluster may still be
/// starting: retried, with the wait logged, until `deadline` or a signal).
async fn mount_root(client: &Client, fs_path: &str, deadline: Instant) -> Result<u64, FuseError> {
    info!(fs_path, "looking up the mounted directory on the masters");
    let mut logged = Instant::now();
    loop {
        let result = match client.stat(fs_path).await {
            Err(FsError::NotFound(_)) => client.mkdir(fs_path, true).await,
            other => other,
        };
        match result {
            Ok(st) if crate::fuse::attr::file_type(&st) == fuser::FileType::Directory => {
                return Ok(st.id)
            }
            Ok(_) => {
                return Err(FsError::NotADirectory(format!(
                    "fuse.fs_path {fs_path} is not a directory of the cluster"
                ))
                .into())
            }
            Err(e @ (FsError::Unavailable(_) | FsError::NotLeader { .. } | FsError::Io(_)))
                if Instant::now() < deadline =>
            {
                if logged.elapsed() >= Duration::from_secs(5) {
                    info!(error = %e, "waiting for the masters before mounting");
                    logged = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Mounts the cluster at `fuse.mnt_path`: recovers a stale mount there, creates a missing
/// target, waits for the masters (up to `wait_for_cluster`), then mounts.
pub async fn mount(
    client: Client,
    fuse: &FuseConfig,
    wait_for_cluster: Duration,
) -> Result<Mounted, FuseError> {
    let path = PathBuf::from(&fuse.mnt_path);
    let fail = |why: String| FuseError::Mount {
        path: path.display().to_string(),
        why,
    };
    let deadline = Instant::now() + wait_for_cluster;
    let inodes = if fuse.mounts.is_empty() {
        let fs_path = if fuse.fs_path.is_empty() {
            "/"
        } else {
            fuse.fs_path.as_str()
        };
        Inodes::new(fs_path, mount_root(&client, fs_path, deadline).await?)
    } else {
        // Several dataset mounts: the root shows one directory per mount.
        let mut view = Vec::new();
        for m in &fuse.mounts {
            mount_root(&client, &m.fs_path, deadline).await?;
            view.push(RootEntry {
                name: m.path.trim_start_matches('/').to_string(),
                fs_path: m.fs_path.clone(),
                read_only: m.read_only,
            });
        }
        info!(
            mounts = view.len(),
            "the mount root shows one directory per dataset mount"
        );
        Inodes::with_view(view)
    };
    if path.exists() && !path.is_dir() {
        return Err(fail(
            "fuse.mnt_path is not a directory: point it at a directory (Fluid's targetPath)".into(),
        ));
    }
    for done in mount_table::prepare_target(&path).map_err(|e| fail(e.to_string()))? {
        info!(path = %path.display(), "{done}");
    }
    let fs = CurvineFs::new(
        client,
        tokio::runtime::Handle::current(),
        inodes,
        fs_options(fuse),
    );
    let ops = fs.ops();
    for option in ignored_options(fuse) {
        warn!(
            option,
            "fuse option handled by the client's own keys or not applicable; ignored"
        );
    }
    let config = session_config(fuse);
    let kernel = mount_table::FuseMount {
        source: "curvine".into(),
        subtype: SUBTYPE.into(),
        readonly: is_readonly(fuse),
        options: kernel_options(fuse),
    };
    let target = path.clone();
    let started = tokio::task::spawn_blocking(move || {
        match mount_table::mount_fuse(&target, &kernel) {
            Ok(fd) => fuser::Session::from_fd(fs, fd, SessionACL::All, config).map(|s| (s, None)),
            // Without CAP_SYS_ADMIN: through fusermount3, which fuser runs.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                let mut session = fuser::Session::new(fs, &target, &config)?;
                let unmounter = session.unmount_callable();
                Ok((session, Some(unmounter)))
            }
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| fail(e.to_string()))?;
    let (session, unmounter) = started.map_err(|e| fail(mount_hint(&e)))?;
    ops.set_notifier(session.notifier());
    let thread = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || session.run())
        .map_err(|e| fail(format!("cannot start the FUSE threads: {e}")))?;
    readahead::set(&path, fuse.max_readahead_kb).await;
    info!(
        path = %path.display(),
        fs_path = %fuse.fs_path,
        mounts = fuse.mounts.len(),
        threads = reader_threads(fuse),
        io_threads = fuse.io_threads,
        readonly = is_readonly(fuse),
        "mounted"
    );
    Ok(Mounted {
        path,
        ops,
        unmounter,
        session: thread,
    })
}

/// An error from mounting with the likely fix.
fn mount_hint(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) if !Path::new("/dev/fuse").exists() => {
            format!("{e}: /dev/fuse is missing; give the container the FUSE device (privileged, or --device /dev/fuse --cap-add SYS_ADMIN)")
        }
        Some(libc::EPERM) | Some(libc::EACCES) => {
            format!("{e}: mounting needs CAP_SYS_ADMIN (a privileged container) or fusermount3")
        }
        _ => e.to_string(),
    }
}

impl Mounted {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits open files, unmounts (lazily when busy) and waits for the FUSE threads,
    /// at most `grace`.
    pub async fn unmount(mut self, grace: Duration) -> Result<(), FuseError> {
        let open = self.ops.open_for_write();
        if open > 0 {
            info!(files = open, "committing files still open for writing");
        }
        for (path, e) in self.ops.flush_all().await {
            warn!(path = %path, error = %e, "could not commit a file at unmount");
        }
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || {
            let ours = mount_table::top_fuse_mount(&path)?;
            let done = match self.unmounter.as_mut().map(|u| u.unmount()) {
                Some(Ok(())) => mount_table::Unmounted::Unmounted,
                // Ours, or busy through fusermount3: lazy when files are still open; the
                // kernel drops the mount when they close.
                _ => mount_table::unmount(&path)?,
            };
            info!(path = %path.display(), outcome = ?done, "unmounted");
            if done == mount_table::Unmounted::Detached {
                if let Some(entry) = ours {
                    if mount_table::abort_connection(&entry) {
                        info!(device = %entry.device, "aborted the FUSE connection held by open files");
                    }
                }
            }
            Ok::<_, std::io::Error>(self.session)
        })
        .await
        .map_err(|e| FuseError::Mount {
            path: self.path.display().to_string(),
            why: e.to_string(),
        })?;
        let session = result.map_err(|e| FuseError::Mount {
            path: self.path.display().to_string(),
            why: format!("unmount: {e}"),
        })?;
        let deadline = Instant::now() + grace;
        while !session.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !session.is_finished() {
            warn!("FUSE threads still busy after the grace period; exiting anyway");
        }
        Ok(())
    }
}

/// The client role: mounts and serves until SIGTERM, SIGINT or SIGQUIT, then unmounts.
pub async fn run(config: &ClusterConfig) -> Result<(), FuseError> {
    let client = Client::new(config)?;
    crate::rpc::auth::note_open("client", client.token().is_some());
    let health = health::ClientHealth::new(
        PathBuf::from(&config.fuse.mnt_path),
        config.fuse.fs_path.clone(),
        config.master_endpoints(),
        client.clone(),
    );
    let (stop_web, web_shutdown) = crate::shutdown::channel();
    let token = client.token().cloned();
    serve_health(config.fuse.web_port, health.clone(), token, web_shutdown).await;
    let mounting = mount(client, &config.fuse, Duration::from_secs(24 * 3600));
    let mounted = tokio::select! {
        m = mounting => m?,
        signal = crate::shutdown::wait_for_signal() => {
            info!(signal = signal.unwrap_or("signal"), "stopped before the mount was made");
            return Ok(());
        }
    };
    health.start_probing();
    match crate::shutdown::wait_for_signal().await {
        Ok(signal) => info!(signal, "stopping FUSE client"),
        Err(e) => warn!(error = %e, "cannot wait for signals; stopping"),
    }
    stop_web.fire();
    mounted.unmount(Duration::from_secs(20)).await
}

/// Serves the client's `/healthz` on `port` (0: any free port). A port in use is logged
/// and the mount goes on without it: the mount matters more than its probe.
async fn serve_health(
    port: u16,
    health: Arc<health::ClientHealth>,
    token: Option<crate::rpc::auth::Token>,
    shutdown: crate::shutdown::Shutdown,
) {
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            warn!(port, error = %e, "cannot serve /healthz on fuse.web_port: readiness probes on it will fail; free the port or change fuse.web_port");
            return;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(address = %addr, "client web server listening (/healthz: 200 once the mount answers)");
    tokio::spawn(async move {
        if let Err(e) = crate::web::serve(listener, health, token, shutdown).await {
            warn!(error = %e, "client web server stopped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_subtype_allow_other_and_read_only() {
        let mut fuse = FuseConfig {
            readonly: true,
            io_threads: 4,
            fuse_opts: vec![
                "noatime".into(),
                "allow_other".into(),
                "max_write=1048576".into(),
            ],
            ..FuseConfig::default()
        };
        let c = session_config(&fuse);
        assert!(c
            .mount_options
            .contains(&MountOption::Subtype("curvinefs".into())));
        assert!(c.mount_options.contains(&MountOption::RO));
        assert!(c.mount_options.contains(&MountOption::NoAtime));
        assert!(!c.mount_options.contains(&MountOption::RW));
        assert_eq!(c.acl, SessionACL::All);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.n_threads, Some(4.min(2 * cores)));
        fuse.readonly = false;
        fuse.io_threads = 0;
        let c = session_config(&fuse);
        assert!(c.mount_options.contains(&MountOption::RW));
        assert_eq!(c.n_threads, Some(1));
    }
}
