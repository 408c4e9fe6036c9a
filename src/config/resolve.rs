//! Where a command's config comes from, decided in one place from the command line and
//! the environment snapshot, and the config itself: read as is, rendered from Fluid's
//! inputs, built for a standalone cluster, or only the masters' addresses.
//!
//! | command | config |
//! |---|---|
//! | `--conf FILE` with any command | the file, as is |
//! | `master`/`worker`/`client`/`fluid-thin-runtime`, no command, `render` | rendered for the detected mode (standalone mode: the rendered file when it exists) |
//! | `standalone` | built-in single-node defaults under `--data-dir` |
//! | `fs`, `report` | `CURVINE_CONF_FILE`, else `$CURVINE_HOME/conf/curvine-cluster.toml` |
//! | `mount-ufs`, `report-summary` | rendered in memory from a mounted runtime config, else as `fs` |
//! | `load` | as `mount-ufs` when a runtime config is mounted, else `CURVINE_MASTER_ENDPOINTS`, else the masters found by DNS |

use super::{discovery, fluid_json, secrets::SecretDir, thin, ClusterConfig, Rendered};
use crate::cli::{Cli, Command};
use crate::env::{self, EnvSnapshot};
use crate::error::{Error, InputError};
use crate::mode::{self, Detected, Mode};
use std::path::{Path, PathBuf};

/// Where a command's config comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A file read as is.
    File(PathBuf),
    /// Rendered from Fluid's inputs (or the standalone defaults) for a detected mode.
    Render(Detected),
    /// A single-node cluster on loopback with its data under this directory.
    Standalone(PathBuf),
    /// Only the masters' addresses, given in `CURVINE_MASTER_ENDPOINTS`.
    Masters(Vec<super::HostPort>),
    /// Only the masters' addresses, found by DNS from the pod (a DataLoad pod).
    DiscoverMasters,
}

/// A command's config: its text, its typed form, and where it must be written.
#[derive(Debug)]
pub struct Resolved {
    /// The TOML text.
    pub text: String,
    /// The typed, validated config.
    pub config: ClusterConfig,
    /// Where the text goes, when it was rendered for a role (`None` when read as is).
    pub write_to: Option<PathBuf>,
    /// Where the config came from, for the log.
    pub source: String,
    /// The rendering's notes and secrets (`None` when read as is).
    pub rendered: Option<Rendered>,
    /// The mode detected on the way, when the command needed one.
    pub detected: Option<Detected>,
}

/// The mode and component of this process (roles, `render`, `detect`).
pub fn detect(cli: &Cli, env: &EnvSnapshot) -> Result<Detected, InputError> {
    mode::detect(cli.hint(), env, runtime_config_mounted(env))
}

/// Resolves the config of `cli`'s command: decides its [`Origin`] and loads it.
pub fn resolve(cli: &Cli, env: &EnvSnapshot) -> Result<Resolved, Error> {
    let (origin, detected) = decide(cli, env)?;
    let mut resolved = load(&origin, env)?;
    resolved.detected = detected;
    if let Some(dir) = env.get(env::CURVINE_SECURITY_DIR) {
        security_dir(&mut resolved.config.security, Path::new(dir));
    }
    if let Some(file) = env.get(env::CURVINE_TOKEN_FILE) {
        resolved.config.security.token_file = file.to_string();
    }
    if let Some(dir) = env.get(env::CURVINE_DOMAIN_SOCKET_DIR) {
        resolved.config.worker.domain_socket_path = dir.to_string();
    }
    Ok(resolved)
}

/// Points the `[security]` keys at the files of a mounted Secret that it holds: `token`,
/// `ca.crt`, and `tls.crt` with `tls.key` (either of the pair sets both, so a missing half
/// is reported by name). A client's Secret may hold the token and CA only.
fn security_dir(security: &mut crate::config::model::SecurityConfig, dir: &Path) {
    let file = |name: &str| dir.join(name).display().to_string();
    let present = |name: &str| dir.join(name).exists();
    if present("token") {
        security.token_file = file("token");
    }
    if present("ca.crt") {
        security.tls_ca_file = file("ca.crt");
    }
    if present("tls.crt") || present("tls.key") {
        security.tls_cert_file = file("tls.crt");
        security.tls_key_file = file("tls.key");
    }
}

/// Where the config of `cli`'s command comes from (the table in this module's header).
pub fn origin(cli: &Cli, env: &EnvSnapshot) -> Result<Origin, Error> {
    decide(cli, env).map(|(origin, _)| origin)
}

/// The origin, and the mode detected on the way (once) for roles and `render`. Reads no
/// file but the checks whether one exists.
fn decide(cli: &Cli, env: &EnvSnapshot) -> Result<(Origin, Option<Detected>), Error> {
    let conf = cli.conf.clone();
    let plain = |origin: Result<Origin, Error>| origin.map(|o| (o, None));
    match &cli.command {
        Some(Command::Detect { .. }) | Some(Command::Umount { .. }) => Err(InputError::new(
            "this command reads no cluster config",
            "the command line",
            "run curvine-fluid render to see the config",
        )
        .into()),
        Some(Command::Standalone { data_dir, .. }) => plain(Ok(match conf {
            Some(path) => Origin::File(path),
            None => Origin::Standalone(
                std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone()),
            ),
        })),
        Some(Command::Fs { .. }) | Some(Command::Report { .. }) => plain(
            cluster_file(conf, env)
                .map(Origin::File)
                .map_err(Error::from),
        ),
        Some(Command::MountUfs) | Some(Command::ReportSummary) => plain(entry_origin(cli, env)),
        Some(Command::Load { .. }) => plain(if conf.is_some() || runtime_config_mounted(env) {
            entry_origin(cli, env)
        } else {
            match env.get(env::CURVINE_MASTER_ENDPOINTS) {
                Some(text) => master_endpoints(text)
                    .map(Origin::Masters)
                    .map_err(Error::from),
                None => Ok(Origin::DiscoverMasters),
            }
        }),
        Some(Command::Render { .. })
        | Some(Command::Master { .. })
        | Some(Command::Worker { .. })
        | Some(Command::Client { .. })
        | Some(Command::FluidThinRuntime)
        | None => {
            let detected = detect(cli, env)?;
            let rendered_before = env.config_file();
            let origin = match conf {
                Some(path) => Origin::File(path),
                None if detected.mode == Mode::Standalone && rendered_before.is_file() => {
                    Origin::File(rendered_before)
                }
                None => Origin::Render(detected.clone()),
            };
            Ok((origin, Some(detected)))
        }
    }
}

/// Loads the config from its origin. Writes nothing.
pub fn load(origin: &Origin, env: &EnvSnapshot) -> Result<Resolved, Error> {
    match origin {
        Origin::File(path) => Ok(read_as_is(path)?),
        Origin::Render(detected) => render(detected, env),
        Origin::Standalone(data_dir) => {
            let rendered = super::render_standalone(
                &data_dir.display().to_string(),
                toml_edit::DocumentMut::new(),
            )?;
            Ok(from_rendered(rendered, None, "standalone defaults")?)
        }
        Origin::Masters(hosts) => Ok(masters_only(hosts.clone(), "env CURVINE_MASTER_ENDPOINTS")),
        Origin::DiscoverMasters => {
            // DNS before any role's runtime exists: a small one of its own.
            let hosts = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Role(format!("cannot start the async runtime: {e}")))?
                .block_on(discovery::discover_masters(env))?;
            Ok(masters_only(hosts, "the dataset's master service (DNS)"))
        }
    }
}

/// The CacheRuntime config: its file name (`FLUID_RUNTIME_CONFIG_PATH`, default
/// `/etc/fluid/config/runtime.json`) and its JSON.
pub fn runtime_json(env: &EnvSnapshot) -> Result<(String, serde_json::Value), InputError> {
    let file = env
        .get(env::FLUID_RUNTIME_CONFIG_PATH)
        .unwrap_or(env::DEFAULT_CACHE_CONFIG_PATH)
        .to_string();
    let text = fluid_json::read_text(Path::new(&file), "runtime config")?;
    let json = fluid_json::parse(&file, &text, true)?;
    Ok((file, json))
}

/// Whether `FLUID_RUNTIME_CONFIG_PATH` names a file that exists.
fn runtime_config_mounted(env: &EnvSnapshot) -> bool {
    env.get(env::FLUID_RUNTIME_CONFIG_PATH)
        .is_some_and(|p| Path::new(p).is_file())
}

/// The file of cluster commands: `--conf`, else `CURVINE_CONF_FILE`, else the file
/// rendered at `$CURVINE_HOME/conf/curvine-cluster.toml`.
fn cluster_file(conf: Option<PathBuf>, env: &EnvSnapshot) -> Result<PathBuf, InputError> {
    let path = conf
        .or_else(|| env.get(env::CURVINE_CONF_FILE).map(PathBuf::from))
        .unwrap_or_else(|| env.config_file());
    if path.is_file() {
        Ok(path)
    } else {
        Err(InputError::new(
            "no cluster config found",
            format!("file {}", path.display()),
            "pass --conf FILE, or run inside a pod where curvine-fluid rendered its config",
        ))
    }
}

/// An execution entry run by `kubectl exec` in a runtime pod: `--conf`, else rendered in
/// memory from Fluid's runtime config as the pod's role does, else the file the role wrote.
fn entry_origin(cli: &Cli, env: &EnvSnapshot) -> Result<Origin, Error> {
    if let Some(path) = &cli.conf {
        return Ok(Origin::File(path.clone()));
    }
    if runtime_config_mounted(env) {
        let detected = mode::detect(cli.hint(), env, true)?;
        if detected.mode == Mode::Cache && detected.component.is_some() {
            return Ok(Origin::Render(detected));
        }
    }
    Ok(Origin::File(cluster_file(None, env)?))
}

/// `CURVINE_MASTER_ENDPOINTS` (`host:port[,host:port...]`).
fn master_endpoints(text: &str) -> Result<Vec<super::HostPort>, InputError> {
    Ok(thin::parse_endpoints(text)
        .map_err(|what| {
            InputError::new(
                what,
                format!("env {}", env::CURVINE_MASTER_ENDPOINTS),
                "write host:port[,host:port...]",
            )
        })?
        .into_iter()
        .map(|(hostname, port)| super::HostPort { hostname, port })
        .collect())
}

/// A config that holds only the masters' addresses (a DataLoad pod's).
fn masters_only(hosts: Vec<super::HostPort>, source: &str) -> Resolved {
    let mut config = ClusterConfig::default();
    config.client.master_addrs = hosts;
    Resolved {
        text: String::new(),
        config,
        write_to: None,
        source: source.to_string(),
        rendered: None,
        detected: None,
    }
}

/// Renders the config for the detected mode; it is to be written to
/// `$CURVINE_HOME/conf/curvine-cluster.toml`.
fn render(detected: &Detected, env: &EnvSnapshot) -> Result<Resolved, Error> {
    let target = env.config_file();
    let data_dir = env
        .get(env::CURVINE_DATA_DIR)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/data", env.curvine_home().trim_end_matches('/')));
    let rendered = match detected.mode {
        Mode::Cache => {
            let component = detected.component.ok_or_else(|| no_component(detected))?;
            let (file, json) = runtime_json(env)?;
            let base = super::load_base(&target)?;
            let input = super::cache::CacheInput {
                component,
                env,
                file: &file,
                json: &json,
                data_dir: &data_dir,
            };
            super::cache::render(&input, base)?
        }
        Mode::Thin => {
            let file = env
                .get(env::FLUID_RUNTIME_CONFIG_PATH)
                .unwrap_or(env::DEFAULT_THIN_CONFIG_PATH);
            let text = fluid_json::read_text(Path::new(file), "ThinRuntime config")?;
            let json = fluid_json::parse(file, &text, false)?;
            let base = super::load_base(&target)?;
            let secrets = SecretDir::new(env.secrets_dir());
            let input = thin::ThinInput {
                env,
                file,
                json: &json,
                secrets: &secrets,
            };
            thin::render(&input, base)?
        }
        Mode::Standalone => super::render_standalone(&data_dir, toml_edit::DocumentMut::new())?,
    };
    let source = format!("rendered for {}", detected.mode.name());
    Ok(from_rendered(rendered, Some(target), &source)?)
}

fn from_rendered(
    rendered: Rendered,
    write_to: Option<PathBuf>,
    source: &str,
) -> Result<Resolved, InputError> {
    Ok(Resolved {
        text: rendered.text(),
        config: rendered.to_config()?,
        write_to,
        source: source.to_string(),
        rendered: Some(rendered),
        detected: None,
    })
}

fn read_as_is(path: &Path) -> Result<Resolved, InputError> {
    let text = fluid_json::read_text(path, "config file")?;
    let config = ClusterConfig::from_toml(&text, &format!("file {}", path.display()))?;
    Ok(Resolved {
        text,
        config,
        write_to: None,
        source: format!("file {}", path.display()),
        rendered: None,
        detected: None,
    })
}

/// The error of a process that cannot tell which component to run.
pub fn no_component(detected: &Detected) -> InputError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("curvine-fluid").chain(args.iter().copied()))
    }

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn conf_wins_for_every_command_that_reads_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "").unwrap();
        let conf = file.to_str().unwrap();
        for args in [
            vec!["--conf", conf, "master"],
            vec!["--conf", conf, "render"],
            vec!["--conf", conf, "fs", "ls", "/"],
            vec!["--conf", conf, "report"],
            vec!["--conf", conf, "mount-ufs"],
            vec!["--conf", conf, "load"],
            vec!["--conf", conf, "standalone"],
        ] {
            let o = origin(&cli(&args), &env(&[])).unwrap();
            assert_eq!(o, Origin::File(file.clone()), "{args:?}");
        }
    }

    #[test]
    fn cluster_commands_take_the_conf_file_variable_or_fail_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "").unwrap();
        let e = env(&[("CURVINE_CONF_FILE", file.to_str().unwrap())]);
        assert_eq!(
            origin(&cli(&["report"]), &e).unwrap(),
            Origin::File(file.clone())
        );
        let e = env(&[("CURVINE_HOME", dir.path().to_str().unwrap())]);
        let err = origin(&cli(&["fs", "ls", "/"]), &e)
            .unwrap_err()
            .to_string();
        assert!(err.contains("curvine-cluster.toml"), "{err}");
    }

    #[test]
    fn a_dataload_pod_takes_endpoints_else_discovers() {
        let e = env(&[("CURVINE_MASTER_ENDPOINTS", "m-0:8995,m-1:8995")]);
        match origin(&cli(&["load"]), &e).unwrap() {
            Origin::Masters(h) => assert_eq!(h.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            origin(&cli(&["load"]), &env(&[])).unwrap(),
            Origin::DiscoverMasters
        );
        let bad = env(&[("CURVINE_MASTER_ENDPOINTS", "m-0:99999")]);
        let err = origin(&cli(&["load"]), &bad).unwrap_err().to_string();
        assert!(err.contains("CURVINE_MASTER_ENDPOINTS"), "{err}");
    }

    #[test]
    fn roles_render_for_the_detected_mode() {
        let o = origin(
            &cli(&[]),
            &env(&[
                ("FLUID_RUNTIME_TYPE", "thin"),
                ("CURVINE_HOME", "/nonexistent-home"),
            ]),
        )
        .unwrap();
        match o {
            Origin::Render(d) => assert_eq!(d.mode, Mode::Thin),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_security_dir_sets_the_keys_of_the_files_it_holds() {
        let data = tempfile::tempdir().unwrap();
        let secret = tempfile::tempdir().unwrap();
        let args = cli(&["standalone", "--data-dir", data.path().to_str().unwrap()]);
        let dir = secret.path().to_str().unwrap();
        let security = |vars: &[(&str, &str)]| resolve(&args, &env(vars)).unwrap().config.security;
        // An optional Secret that does not exist: an empty directory, an open cluster.
        let open = security(&[("CURVINE_SECURITY_DIR", dir)]);
        assert_eq!(open, crate::config::model::SecurityConfig::default());
        // A client's Secret: the token and the CA.
        std::fs::write(secret.path().join("token"), "t").unwrap();
        std::fs::write(secret.path().join("ca.crt"), "c").unwrap();
        let s = security(&[("CURVINE_SECURITY_DIR", dir)]);
        assert_eq!(s.token_file, format!("{dir}/token"));
        assert_eq!(s.tls_ca_file, format!("{dir}/ca.crt"));
        assert_eq!(
            (s.tls_cert_file.as_str(), s.tls_key_file.as_str()),
            ("", "")
        );
        // A server's Secret: half the pair names both, so the missing half is reported.
        std::fs::write(secret.path().join("tls.crt"), "x").unwrap();
        let s = security(&[("CURVINE_SECURITY_DIR", dir)]);
        assert_eq!(s.tls_cert_file, format!("{dir}/tls.crt"));
        assert_eq!(s.tls_key_file, format!("{dir}/tls.key"));
        // CURVINE_TOKEN_FILE names the token explicitly and wins.
        let s = security(&[("CURVINE_SECURITY_DIR", dir), ("CURVINE_TOKEN_FILE", "/t")]);
        assert_eq!(s.token_file, "/t");
    }

    #[test]
    fn standalone_defaults_resolve_without_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolve(
            &cli(&["standalone", "--data-dir", dir.path().to_str().unwrap()]),
            &env(&[]),
        )
        .unwrap();
        assert!(r.write_to.is_none());
        assert_eq!(r.config.security.token_file, "");
        let with_token = resolve(
            &cli(&["standalone", "--data-dir", dir.path().to_str().unwrap()]),
            &env(&[("CURVINE_TOKEN_FILE", "/etc/curvine/token/token")]),
        )
        .unwrap();
        assert_eq!(
            with_token.config.security.token_file,
            "/etc/curvine/token/token"
        );
        let sockets = format!("{}/sockets", dir.path().display());
        assert_eq!(r.config.worker.domain_socket_path, sockets);
        let shared = resolve(
            &cli(&["standalone", "--data-dir", dir.path().to_str().unwrap()]),
            &env(&[("CURVINE_DOMAIN_SOCKET_DIR", "/var/run/curvine")]),
        )
        .unwrap();
        assert_eq!(shared.config.worker.domain_socket_path, "/var/run/curvine");
        assert!(r
            .config
            .master
            .meta_dir
            .starts_with(dir.path().to_str().unwrap()));
    }

    #[test]
    fn detect_and_umount_read_no_config() {
        assert!(origin(&cli(&["detect"]), &env(&[])).is_err());
        assert!(origin(&cli(&["umount", "/x"]), &env(&[])).is_err());
    }
}
