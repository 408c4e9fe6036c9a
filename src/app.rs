//! What the binary does with a parsed command line: detect the mode, prepare the config
//! (render and write it, or take `--conf`), and start the role. The only place besides
//! `main` that decides what happens in which order.

use crate::cli::{Cli, Command};
use crate::config::{self, secrets::SecretDir, thin, ClusterConfig, NoteLevel, Rendered};
use crate::env::{self, EnvSnapshot};
use crate::error::{Error, InputError};
use crate::mode::{self, Component, Detected, Mode};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// A config ready for a role: its text, its typed form, and where it must be written.
#[derive(Debug)]
pub struct Prepared {
    /// The TOML text.
    pub text: String,
    /// The typed, validated config.
    pub config: ClusterConfig,
    /// Where the text goes, when it was rendered (`None` when it was read as is).
    pub write_to: Option<PathBuf>,
    /// Where the config came from, for the log.
    pub source: String,
    /// The rendering's notes and secrets (empty when read as is).
    pub rendered: Option<Rendered>,
}

/// Runs the command.
pub fn run(cli: Cli, env: EnvSnapshot) -> Result<(), Error> {
    // Commands that talk to a cluster or start one need no mode detection.
    match &cli.command {
        Some(Command::Standalone { data_dir, mnt }) => {
            return standalone(cli.conf.as_deref(), data_dir, mnt.as_deref())
        }
        Some(Command::Umount { path }) => return umount(&umount_target(path.as_deref(), &env)?),
        Some(Command::MountUfs) => {
            let (file, json) = runtime_json(&env)?;
            let wanted = crate::entries::wanted_mounts(&file, &json)?;
            let config = entry_config(&cli, &env)?;
            let doc = block_on(async {
                let client = crate::client::Client::new(&config)?;
                crate::entries::mount_ufs(&client, wanted).await
            })?;
            return print_result(&format!("{doc}\n"));
        }
        Some(Command::ReportSummary) => {
            let config = entry_config(&cli, &env)?;
            let doc = block_on(async {
                let client = crate::client::Client::new(&config)?;
                crate::entries::report_summary(&client).await
            })?;
            return print_result(&format!("{doc}\n"));
        }
        Some(Command::Load { paths }) => {
            let targets = crate::dataload::targets(&env, paths)?;
            let metadata = env
                .get(env::FLUID_DATALOAD_METADATA)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            return block_on(async {
                let config = load_config(&cli, &env).await?;
                let client = crate::client::Client::new(&config)?;
                crate::dataload::load(&client, &targets, metadata).await
            });
        }
        Some(Command::Fs { op }) => {
            let config = cluster_config(cli.conf.as_deref(), &env)?;
            return block_on(async {
                let client = crate::client::Client::new(&config)?;
                let mut out = std::io::stdout().lock();
                crate::commands::fs(&client, op, &mut out).await
            });
        }
        Some(Command::Report { json }) => {
            let config = cluster_config(cli.conf.as_deref(), &env)?;
            return block_on(async {
                let client = crate::client::Client::new(&config)?;
                let mut out = std::io::stdout().lock();
                crate::commands::report(&client, *json, &mut out).await
            });
        }
        _ => {}
    }
    let detected = mode::detect(cli.hint(), &env, runtime_config_mounted(&env))?;

    match &cli.command {
        Some(Command::Detect { .. }) => print_result(&detect_report(&detected)),
        Some(Command::Render { .. }) => {
            let prepared = prepare(&detected, cli.conf.as_deref(), &env)?;
            log_notes(&prepared);
            print_result(&prepared.text)
        }
        _ => {
            info!(
                mode = %detected.mode.name(),
                component = %detected.component.map(Component::name).unwrap_or("none"),
                mode_reason = %detected.mode_reason,
                component_reason = %detected.component_reason,
                "detected mode"
            );
            let component = detected.component.ok_or_else(|| no_component(&detected))?;
            let prepared = prepare(&detected, cli.conf.as_deref(), &env)?;
            log_notes(&prepared);
            if let Some(path) = &prepared.write_to {
                config::write::write_atomic(path, &prepared.text)?;
                info!(path = %path.display(), "wrote config");
            }
            let secrets = prepared
                .rendered
                .as_ref()
                .map(|r| r.secrets.as_slice())
                .unwrap_or(&[]);
            let doc: toml_edit::DocumentMut = prepared.text.parse().unwrap_or_default();
            for line in config::summary_lines(&doc, secrets) {
                info!(source = %prepared.source, "config {line}");
            }
            run_role(component, &prepared.config)
        }
    }
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

/// The config for cluster commands: `--conf`, else `CURVINE_CONF_FILE`, else the file
/// rendered at `$CURVINE_HOME/conf/curvine-cluster.toml`.
fn cluster_config(conf: Option<&Path>, env: &EnvSnapshot) -> Result<ClusterConfig, Error> {
    let path = conf
        .map(Path::to_path_buf)
        .or_else(|| env.get("CURVINE_CONF_FILE").map(PathBuf::from))
        .unwrap_or_else(|| env.config_file());
    if !path.is_file() {
        return Err(InputError::new(
            "no cluster config found",
            format!("file {}", path.display()),
            "pass --conf FILE, or run inside a pod where curvine-fluid rendered its config",
        )
        .into());
    }
    Ok(read_as_is(&path)?.config)
}

/// Whether `FLUID_RUNTIME_CONFIG_PATH` names a file that exists.
fn runtime_config_mounted(env: &EnvSnapshot) -> bool {
    env.get(env::FLUID_RUNTIME_CONFIG_PATH)
        .is_some_and(|p| Path::new(p).is_file())
}

/// The CacheRuntime config: its file name (`FLUID_RUNTIME_CONFIG_PATH`, default
/// `/etc/fluid/config/runtime.json`) and its JSON.
fn runtime_json(env: &EnvSnapshot) -> Result<(String, serde_json::Value), InputError> {
    let file = env
        .get(env::FLUID_RUNTIME_CONFIG_PATH)
        .unwrap_or("/etc/fluid/config/runtime.json")
        .to_string();
    let text = config::fluid_json::read_text(Path::new(&file), "runtime config")?;
    let json = config::fluid_json::parse(&file, &text, true)?;
    Ok((file, json))
}

/// The config for an execution entry run by `kubectl exec` in a runtime pod: `--conf`,
/// else rendered in memory from Fluid's runtime config as the pod's role does, else the
/// file the role wrote.
fn entry_config(cli: &Cli, env: &EnvSnapshot) -> Result<ClusterConfig, Error> {
    if let Some(path) = cli.conf.as_deref() {
        return Ok(read_as_is(path)?.config);
    }
    if runtime_config_mounted(env) {
        let detected = mode::detect(cli.hint(), env, true)?;
        if detected.mode == Mode::Cache && detected.component.is_some() {
            return Ok(prepare(&detected, None, env)?.config);
        }
    }
    cluster_config(None, env)
}

/// The masters for a DataLoad pod, which has no runtime config: `--conf`, else
/// `CURVINE_MASTER_ENDPOINTS`, else a runtime config if one is mounted, else the dataset's
/// master service found from the pod name.
async fn load_config(cli: &Cli, env: &EnvSnapshot) -> Result<ClusterConfig, Error> {
    if cli.conf.is_some() || runtime_config_mounted(env) {
        return entry_config(cli, env);
    }
    let hosts = match env.get(env::CURVINE_MASTER_ENDPOINTS) {
        Some(text) => thin::parse_endpoints(text)
            .map_err(|what| {
                InputError::new(
                    what,
                    format!("env {}", env::CURVINE_MASTER_ENDPOINTS),
                    "write host:port[,host:port...]",
                )
            })?
            .into_iter()
            .map(|(hostname, port)| config::model::HostPort { hostname, port })
            .collect(),
        None => crate::dataload::discover_masters(env).await?,
    };
    let mut config = ClusterConfig::default();
    config.client.master_addrs = hosts;
    Ok(config)
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
fn standalone(conf: Option<&Path>, data_dir: &Path, mnt: Option<&Path>) -> Result<(), Error> {
    let prepared = match conf {
        Some(path) => read_as_is(path)?,
        None => {
            let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            let rendered = config::render_standalone(
                &dir.display().to_string(),
                toml_edit::DocumentMut::new(),
            )?;
            Prepared {
                text: rendered.text(),
                config: rendered.to_config()?,
                write_to: None,
                source: "standalone defaults".to_string(),
                rendered: Some(rendered),
            }
        }
    };
    let doc: toml_edit::DocumentMut = prepared.text.parse().unwrap_or_default();
    for line in config::summary_lines(&doc, &[]) {
        info!(source = %prepared.source, "config {line}");
    }
    let config = prepared.config;
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
                let client = crate::client::Client::new(&config)?;
                match crate::fuse::mount(client, &fuse, std::time::Duration::from_secs(30)).await {
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
            if let Err(e) = m.unmount(std::time::Duration::from_secs(10)).await {
                warn!(error = %e, "unmount failed");
            }
        }
        cluster
            .shutdown()
            .await
            .map_err(|e| Error::Role(e.to_string()))
    })
}

fn no_component(detected: &Detected) -> InputError {
    let fix = match detected.mode {
        Mode::Standalone => "run curvine-fluid master|worker|client, or start it from Fluid",
        _ => "pass master, worker or client as the first argument, or set FLUID_RUNTIME_COMPONENT_TYPE",
    };
    InputError::new(
        format!(
            "cannot tell which component to run in {} mode",
            detected.mode.name()
        ),
        format!("argument and env {}", env::FLUID_RUNTIME_COMPONENT_TYPE),
        fix,
    )
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

/// Renders (or reads) the config for the detected mode. Writes nothing.
pub fn prepare(
    detected: &Detected,
    conf: Option<&Path>,
    env: &EnvSnapshot,
) -> Result<Prepared, Error> {
    if let Some(path) = conf {
        return Ok(read_as_is(path)?);
    }
    let target = env.config_file();
    let data_dir = env
        .get(env::CURVINE_DATA_DIR)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/data", env.curvine_home().trim_end_matches('/')));
    let rendered = match detected.mode {
        Mode::Cache => {
            let component = detected.component.ok_or_else(|| no_component(detected))?;
            let (file, json) = runtime_json(env)?;
            let base = config::load_base(&target)?;
            let input = config::cache::CacheInput {
                component,
                env,
                file: &file,
                json: &json,
                data_dir: &data_dir,
            };
            config::cache::render(&input, base)?
        }
        Mode::Thin => {
            let file = env
                .get(env::FLUID_RUNTIME_CONFIG_PATH)
                .unwrap_or(env::DEFAULT_THIN_CONFIG_PATH);
            let text = config::fluid_json::read_text(Path::new(file), "ThinRuntime config")?;
            let json = config::fluid_json::parse(file, &text, false)?;
            let base = config::load_base(&target)?;
            let secrets = SecretDir::new(
                env.get(env::CURVINE_SECRETS_DIR)
                    .unwrap_or("/etc/fluid/secrets"),
            );
            let input = thin::ThinInput {
                env,
                file,
                json: &json,
                secrets: &secrets,
            };
            thin::render(&input, base)?
        }
        Mode::Standalone => {
            if target.is_file() {
                return Ok(read_as_is(&target)?);
            }
            config::render_standalone(&data_dir, toml_edit::DocumentMut::new())?
        }
    };
    let text = rendered.text();
    let config = rendered.to_config()?;
    Ok(Prepared {
        text,
        config,
        write_to: Some(target),
        source: format!("rendered for {}", detected.mode.name()),
        rendered: Some(rendered),
    })
}

fn read_as_is(path: &Path) -> Result<Prepared, InputError> {
    let text = config::fluid_json::read_text(path, "config file")?;
    let config = ClusterConfig::from_toml(&text, &format!("file {}", path.display()))?;
    Ok(Prepared {
        text,
        config,
        write_to: None,
        source: format!("file {}", path.display()),
        rendered: None,
    })
}

fn log_notes(prepared: &Prepared) {
    let Some(rendered) = &prepared.rendered else {
        return;
    };
    for note in &rendered.notes {
        let mut message = note.message.clone();
        for secret in rendered.secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret.as_str(), "<redacted>");
        }
        match note.level {
            NoteLevel::Info => info!("{message}"),
            NoteLevel::Warn => warn!("{message}"),
        }
    }
}
