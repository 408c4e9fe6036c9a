//! What the binary does with a parsed command line: one match from the command to its
//! action. Where each command's config comes from is decided in [`config::resolve`];
//! the actions here order the steps (resolve, write, log, start the role or call the
//! cluster) and print results.

use crate::cli::{Cli, Command, FsOp};
use crate::client::Client;
use crate::config::{self, resolve::Resolved, ClusterConfig, NoteLevel};
use crate::env::{self, EnvSnapshot};
use crate::error::{Error, InputError};
use crate::mode::{Component, Detected};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

/// Runs the command.
pub fn run(cli: Cli, env: EnvSnapshot) -> Result<(), Error> {
    let resolve = || config::resolve::resolve(&cli, &env);
    match &cli.command {
        Some(Command::Detect { .. }) => {
            print_result(&detect_report(&config::resolve::detect(&cli, &env)?))
        }
        Some(Command::Render { show_secrets, .. }) => render(resolve()?, *show_secrets),
        Some(Command::Umount { path }) => umount(&umount_target(path.as_deref(), &env)?),
        Some(Command::Standalone { mnt, .. }) => standalone(resolve()?, mnt.as_deref()),
        Some(Command::MountUfs) => mount_ufs(&env, resolve),
        Some(Command::ReportSummary) => report_summary(resolve()?.config),
        Some(Command::Load { paths }) => load(&env, paths, resolve),
        Some(Command::Fs { op }) => fs(resolve()?.config, op),
        Some(Command::Report { json }) => report(resolve()?.config, *json),
        Some(Command::Master { .. })
        | Some(Command::Worker { .. })
        | Some(Command::Client { .. })
        | Some(Command::FluidThinRuntime)
        | None => role(resolve()?),
    }
}

/// `curvine-fluid render`: the config a role would write, on stdout, with values read
/// from secret files masked unless `show_secrets` asks for them.
fn render(resolved: Resolved, show_secrets: bool) -> Result<(), Error> {
    log_notes(&resolved);
    let secrets = resolved
        .rendered
        .as_ref()
        .map(|r| r.secrets.as_slice())
        .unwrap_or(&[]);
    if show_secrets {
        return print_result(&resolved.text);
    }
    let (text, masked) = config::mask_secrets(&resolved.text, secrets);
    if masked > 0 {
        info!(
            masked,
            "values read from secret files are shown as {}; --show-secrets prints them",
            config::REDACTED
        );
    }
    print_result(&text)
}

/// A role (master, worker, client, ThinRuntime FUSE): writes the rendered config, logs
/// it, and runs the component in-process until SIGTERM or SIGINT.
fn role(resolved: Resolved) -> Result<(), Error> {
    let detected = resolved
        .detected
        .clone()
        .ok_or_else(|| Error::Role("no mode was detected for this role".into()))?;
    info!(
        mode = %detected.mode.name(),
        component = %detected.component.map(Component::name).unwrap_or("none"),
        mode_reason = %detected.mode_reason,
        component_reason = %detected.component_reason,
        "detected mode"
    );
    let component = detected
        .component
        .ok_or_else(|| config::resolve::no_component(&detected))?;
    log_notes(&resolved);
    if let Some(path) = &resolved.write_to {
        config::write::write_atomic(path, &resolved.text)?;
        info!(path = %path.display(), "wrote config");
    }
    log_config(&resolved);
    run_role(component, &resolved.config)
}

/// The address servers bind: every interface, as pods need.
const BIND_ALL: &str = "0.0.0.0";

/// Runs the role in-process until SIGTERM or SIGINT.
fn run_role(component: Component, config: &ClusterConfig) -> Result<(), Error> {
    match component {
        Component::Master => block_on(async {
            crate::master::run(config, BIND_ALL)
                .await
                .map_err(|e| Error::Role(e.to_string()))
        }),
        Component::Worker => block_on(async {
            crate::worker::run(config, BIND_ALL)
                .await
                .map_err(|e| Error::Role(e.to_string()))
        }),
        Component::Client => block_on_threads(config.fuse.worker_threads, async {
            crate::fuse::run(config)
                .await
                .map_err(|e| Error::Role(e.to_string()))
        }),
    }
}

/// `curvine-fluid mount-ufs`: the runtime config's mounts become the cluster's mount table.
fn mount_ufs(
    env: &EnvSnapshot,
    resolve: impl FnOnce() -> Result<Resolved, Error>,
) -> Result<(), Error> {
    let (file, json) = config::resolve::runtime_json(env)?;
    let wanted = crate::entries::wanted_mounts(&file, &json)?;
    let mut config = resolve()?.config;
    crate::entries::within_budget(&mut config, crate::entries::MOUNT_UFS_BUDGET);
    let doc = block_on(async {
        crate::entries::probe_mounts(&file, &wanted, crate::entries::MOUNT_UFS_BUDGET / 2).await?;
        let client = Client::new(&config)?;
        crate::entries::mount_ufs(&client, wanted).await
    })?;
    print_result(&format!("{doc}\n"))
}

/// `curvine-fluid report-summary`: Fluid's cache figures as one JSON document.
fn report_summary(mut config: ClusterConfig) -> Result<(), Error> {
    crate::entries::within_budget(&mut config, crate::entries::REPORT_SUMMARY_BUDGET);
    let doc = block_on(async {
        let client = Client::new(&config)?;
        crate::entries::report_summary(&client).await
    })?;
    print_result(&format!("{doc}\n"))
}

/// `curvine-fluid load`: a DataLoad. The paths are checked before the masters are sought.
fn load(
    env: &EnvSnapshot,
    paths: &[String],
    resolve: impl FnOnce() -> Result<Resolved, Error>,
) -> Result<(), Error> {
    let targets = crate::dataload::targets(env, paths)?;
    let metadata = env
        .get(env::FLUID_DATALOAD_METADATA)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let config = resolve()?.config;
    block_on(async {
        let client = Client::new(&config)?;
        crate::dataload::load(&client, &targets, metadata).await
    })
}

/// `curvine-fluid fs ...`.
fn fs(config: ClusterConfig, op: &FsOp) -> Result<(), Error> {
    block_on(async {
        let client = Client::new(&config)?;
        let mut out = std::io::stdout().lock();
        crate::commands::fs(&client, op, &mut out).await
    })
}

/// `curvine-fluid report [--json]`.
fn report(config: ClusterConfig, json: bool) -> Result<(), Error> {
    block_on(async {
        let client = Client::new(&config)?;
        let mut out = std::io::stdout().lock();
        crate::commands::report(&client, json, &mut out).await
    })
}

/// `curvine-fluid umount PATH`: idempotent, lazy when busy.
fn umount(path: &Path) -> Result<(), Error> {
    use crate::fuse::mount_table::{self, Unmounted};
    let outcome = mount_table::unmount(path)
        .map_err(|e| Error::Role(format!("cannot unmount {}: {e}", path.display())))?;
    let what = match outcome {
        Unmounted::NotMounted => "nothing mounted",
        Unmounted::Unmounted => "unmounted",
        Unmounted::Detached => "busy: detached; it goes away when the last file closes",
    };
    info!(path = %path.display(), "{what}");
    Ok(())
}

/// The mount point `umount` works on: the argument, else the pod's Fluid mount path.
fn umount_target(path: Option<&Path>, env: &EnvSnapshot) -> Result<PathBuf, Error> {
    if let Some(path) = path {
        return Ok(path.to_path_buf());
    }
    env.get(env::FLUID_RUNTIME_MOUNT_PATH)
        .or_else(|| env.get(env::MOUNT_POINT))
        .map(PathBuf::from)
        .ok_or_else(|| {
            InputError::new(
                "no mount point given",
                format!(
                    "argument, env {} and env {}",
                    env::FLUID_RUNTIME_MOUNT_PATH,
                    env::MOUNT_POINT
                ),
                "run curvine-fluid umount PATH",
            )
            .into()
        })
}

/// `curvine-fluid standalone`: master and worker in one process on loopback, and the
/// FUSE mount with `--mnt`.
fn standalone(resolved: Resolved, mnt: Option<&Path>) -> Result<(), Error> {
    log_config(&resolved);
    let config = resolved.config;
    block_on(async move {
        let host = config::LOOPBACK;
        let cluster = crate::standalone::Standalone::start(&config, host)
            .await
            .map_err(|e| Error::Role(e.to_string()))?;
        info!(
            elapsed_ms = cluster.leader_after.as_millis() as u64,
            "master is leader and serving"
        );
        let mounted = match mnt {
            Some(dir) => {
                let mut fuse = config.fuse.clone();
                let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
                fuse.mnt_path = dir.display().to_string();
                let client = Client::new(&config)?;
                match crate::fuse::mount(client, &fuse, Duration::from_secs(30)).await {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let _ = cluster.shutdown().await;
                        return Err(Error::Role(e.to_string()));
                    }
                }
            }
            None => None,
        };
        info!(
            master = %crate::rpc::host_port(host, config.master.rpc_port),
            web = %format!("http://{}/api/overview", crate::rpc::host_port(host, config.master.web_port)),
            mount = %mounted.as_ref().map(|m| m.path().display().to_string()).unwrap_or_else(|| "none".into()),
            "standalone cluster running; stop with Ctrl-C"
        );
        match crate::shutdown::wait_for_signal().await {
            Ok(signal) => info!(signal, "stopping standalone cluster"),
            Err(e) => warn!(error = %e, "cannot wait for signals; stopping"),
        }
        if let Some(m) = mounted {
            if let Err(e) = m.unmount(Duration::from_secs(10)).await {
                warn!(error = %e, "unmount failed");
            }
        }
        cluster
            .shutdown()
            .await
            .map_err(|e| Error::Role(e.to_string()))
    })
}

/// Runs a future on a multi-threaded runtime of `threads` workers (0: one per core).
fn block_on_threads<T>(
    threads: usize,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads.min(256));
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| Error::Role(format!("cannot start the async runtime: {e}")))?
        .block_on(fut)
}

/// Runs a future on a multi-threaded runtime.
fn block_on<T>(fut: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    block_on_threads(0, fut)
}

/// Writes a command's result to stdout. A reader that went away (`| head`) is not an
/// error worth a panic.
fn print_result(text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Write {
            path: PathBuf::from("stdout"),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The text printed by `curvine-fluid detect`.
pub fn detect_report(d: &Detected) -> String {
    format!(
        "mode: {}\ncomponent: {}\nmode decided by: {}\ncomponent decided by: {}\n",
        d.mode.name(),
        d.component.map(Component::name).unwrap_or("none"),
        d.mode_reason,
        d.component_reason
    )
}

/// The config, one log line per section, secrets masked.
fn log_config(resolved: &Resolved) {
    let secrets = resolved
        .rendered
        .as_ref()
        .map(|r| r.secrets.as_slice())
        .unwrap_or(&[]);
    let doc: toml_edit::DocumentMut = resolved.text.parse().unwrap_or_default();
    for line in config::summary_lines(&doc, secrets) {
        info!(source = %resolved.source, "config {line}");
    }
}

/// The rendering's notes, secrets masked.
fn log_notes(resolved: &Resolved) {
    let Some(rendered) = &resolved.rendered else {
        return;
    };
    for note in &rendered.notes {
        let (message, _) = config::mask_secrets(&note.message, &rendered.secrets);
        match note.level {
            NoteLevel::Info => info!("{message}"),
            NoteLevel::Warn => warn!("{message}"),
        }
    }
}
