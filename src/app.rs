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
    let config_exists = env
        .get(env::FLUID_RUNTIME_CONFIG_PATH)
        .is_some_and(|p| Path::new(p).is_file());
    let detected = mode::detect(cli.hint(), &env, config_exists)?;

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

/// Starts the role. The roles arrive with the next issues; until then this says so.
fn run_role(component: Component, _config: &ClusterConfig) -> Result<(), Error> {
    Err(Error::RoleUnavailable(component.name()))
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
            let file = env
                .get(env::FLUID_RUNTIME_CONFIG_PATH)
                .unwrap_or("/etc/fluid/config/runtime.json");
            let text = config::fluid_json::read_text(Path::new(file), "runtime config")?;
            let json = config::fluid_json::parse(file, &text, true)?;
            let base = config::load_base(&target)?;
            let input = config::cache::CacheInput {
                component,
                env,
                file,
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
