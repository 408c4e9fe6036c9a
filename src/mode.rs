//! Which runtime this process is (Fluid CacheRuntime, ThinRuntime or standalone) and
//! which component it runs, decided once from the command line and the environment.
//!
//! The precedence is today's entrypoint's (FLUID-CONTRACT §5.3), first match wins:
//!
//! | # | input                                                             | mode       |
//! |---|-------------------------------------------------------------------|------------|
//! | 1 | `FLUID_RUNTIME_TYPE` non-empty                                    | `thin` → thin, any other value → cache |
//! | 2 | first argument `fluid-thin-runtime`                               | thin       |
//! | 3 | `FLUID_RUNTIME_COMPONENT_TYPE` non-empty, or a file at `FLUID_RUNTIME_CONFIG_PATH` | cache |
//! | 4 | nothing of the above                                              | standalone |
//!
//! The component is the first argument, else `FLUID_RUNTIME_COMPONENT_TYPE`; when both
//! are given and disagree, that is an error. A ThinRuntime container is always the FUSE
//! client. [`detect`] does no I/O: the caller says whether the config file exists.

use crate::env::{self, EnvSnapshot};
use crate::error::InputError;
use std::fmt;

/// The runtime this process belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A Fluid CacheRuntime component (master, worker or client pod).
    Cache,
    /// A Fluid ThinRuntime FUSE container mounting an existing cluster.
    Thin,
    /// Outside Fluid: run from a config file, like `curvine-server --conf`.
    Standalone,
}

impl Mode {
    /// The lowercase name shown in logs and by `detect`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cache => "cache-runtime",
            Mode::Thin => "thin-runtime",
            Mode::Standalone => "standalone",
        }
    }
}

/// The Curvine component to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Component {
    /// Metadata service.
    Master,
    /// Block cache.
    Worker,
    /// FUSE client.
    Client,
}

impl Component {
    /// The lowercase name, as Fluid spells it in `FLUID_RUNTIME_COMPONENT_TYPE`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Master => "master",
            Component::Worker => "worker",
            Component::Client => "client",
        }
    }

    /// Parses Fluid's spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Component> {
        match value.trim().to_ascii_lowercase().as_str() {
            "master" => Some(Component::Master),
            "worker" => Some(Component::Worker),
            "client" => Some(Component::Client),
            _ => None,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the command line contributes to detection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CliHint {
    /// The component named as first argument (`master`, `worker`, `client`).
    pub component: Option<Component>,
    /// The first argument was `fluid-thin-runtime`.
    pub thin_argument: bool,
}

/// The outcome of detection, with the reasons that are logged at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The runtime.
    pub mode: Mode,
    /// The component, when one could be determined.
    pub component: Option<Component>,
    /// Which input decided the mode, e.g. `FLUID_RUNTIME_TYPE=thin`.
    pub mode_reason: String,
    /// Which input decided the component, e.g. `argument "master"`.
    pub component_reason: String,
}

/// Decides the mode and component. `config_file_exists` tells whether a file exists at
/// `FLUID_RUNTIME_CONFIG_PATH` (the caller checks; this function does no I/O).
pub fn detect(
    cli: CliHint,
    env: &EnvSnapshot,
    config_file_exists: bool,
) -> Result<Detected, InputError> {
    let env_component_raw = env.get(env::FLUID_RUNTIME_COMPONENT_TYPE);
    let env_component = match env_component_raw {
        None => None,
        Some(raw) => Some(Component::parse(raw).ok_or_else(|| {
            InputError::new(
                format!("unknown component {raw:?}"),
                format!("env {}", env::FLUID_RUNTIME_COMPONENT_TYPE),
                "use master, worker or client",
            )
        })?),
    };

    let (mode, mode_reason) = if let Some(kind) = env.get(env::FLUID_RUNTIME_TYPE) {
        let mode = if kind == "thin" {
            Mode::Thin
        } else {
            Mode::Cache
        };
        (mode, format!("{}={kind}", env::FLUID_RUNTIME_TYPE))
    } else if cli.thin_argument {
        (Mode::Thin, "argument \"fluid-thin-runtime\"".to_string())
    } else if let Some(raw) = env_component_raw {
        (
            Mode::Cache,
            format!("{}={raw}", env::FLUID_RUNTIME_COMPONENT_TYPE),
        )
    } else if config_file_exists {
        let path = env.get(env::FLUID_RUNTIME_CONFIG_PATH).unwrap_or_default();
        (
            Mode::Cache,
            format!("{}={path} exists", env::FLUID_RUNTIME_CONFIG_PATH),
        )
    } else {
        (
            Mode::Standalone,
            format!(
                "none of {}, {}, {} or the argument fluid-thin-runtime is set",
                env::FLUID_RUNTIME_TYPE,
                env::FLUID_RUNTIME_COMPONENT_TYPE,
                env::FLUID_RUNTIME_CONFIG_PATH
            ),
        )
    };

    let (component, component_reason) = match (cli.component, env_component) {
        (Some(arg), Some(from_env)) if arg != from_env => {
            return Err(InputError::new(
                format!(
                    "the argument says {arg} but {} says {from_env}",
                    env::FLUID_RUNTIME_COMPONENT_TYPE
                ),
                format!("argument and env {}", env::FLUID_RUNTIME_COMPONENT_TYPE),
                "make the container args and the component type agree, or drop the argument",
            ))
        }
        (Some(arg), _) => (Some(arg), format!("argument \"{arg}\"")),
        (None, Some(from_env)) => (
            Some(from_env),
            format!("{}={from_env}", env::FLUID_RUNTIME_COMPONENT_TYPE),
        ),
        (None, None) => (None, "no argument and no component type".to_string()),
    };

    if mode == Mode::Thin {
        return match component {
            None | Some(Component::Client) => Ok(Detected {
                mode,
                component: Some(Component::Client),
                mode_reason,
                component_reason: "a ThinRuntime container is always the FUSE client".to_string(),
            }),
            Some(other) => Err(InputError::new(
                format!("a ThinRuntime container cannot run the {other}"),
                component_reason,
                "drop the component argument (ThinRuntime only mounts FUSE), or unset FLUID_RUNTIME_TYPE",
            )),
        };
    }

    Ok(Detected {
        mode,
        component,
        mode_reason,
        component_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvSnapshot {
        EnvSnapshot::from_pairs(pairs.iter().copied())
    }

    const NONE: CliHint = CliHint {
        component: None,
        thin_argument: false,
    };
    const THIN_ARG: CliHint = CliHint {
        component: None,
        thin_argument: true,
    };
    fn arg(c: Component) -> CliHint {
        CliHint {
            component: Some(c),
            thin_argument: false,
        }
    }

    #[test]
    fn runtime_type_thin_wins_over_everything() {
        let d = detect(
            NONE,
            &env(&[
                ("FLUID_RUNTIME_TYPE", "thin"),
                ("FLUID_RUNTIME_COMPONENT_TYPE", "client"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(d.mode, Mode::Thin);
        assert_eq!(d.component, Some(Component::Client));
        assert_eq!(d.mode_reason, "FLUID_RUNTIME_TYPE=thin");
    }

    #[test]
    fn any_other_runtime_type_is_cache_even_with_thin_argument() {
        let d = detect(
            THIN_ARG,
            &env(&[
                ("FLUID_RUNTIME_TYPE", "cache"),
                ("FLUID_RUNTIME_COMPONENT_TYPE", "worker"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(d.mode, Mode::Cache);
        assert_eq!(d.component, Some(Component::Worker));
    }

    #[test]
    fn thin_argument_selects_thin() {
        let d = detect(THIN_ARG, &env(&[]), false).unwrap();
        assert_eq!(d.mode, Mode::Thin);
        assert_eq!(d.mode_reason, "argument \"fluid-thin-runtime\"");
    }

    #[test]
    fn component_type_or_config_file_selects_cache() {
        let d = detect(
            NONE,
            &env(&[("FLUID_RUNTIME_COMPONENT_TYPE", "master")]),
            false,
        )
        .unwrap();
        assert_eq!(
            (d.mode, d.component),
            (Mode::Cache, Some(Component::Master))
        );
        let d = detect(
            arg(Component::Worker),
            &env(&[(
                "FLUID_RUNTIME_CONFIG_PATH",
                "/etc/fluid/config/runtime.json",
            )]),
            true,
        )
        .unwrap();
        assert_eq!(
            (d.mode, d.component),
            (Mode::Cache, Some(Component::Worker))
        );
        assert!(d.mode_reason.contains("exists"));
    }

    #[test]
    fn a_config_path_without_a_file_is_standalone() {
        let d = detect(
            arg(Component::Master),
            &env(&[("FLUID_RUNTIME_CONFIG_PATH", "/nope.json")]),
            false,
        )
        .unwrap();
        assert_eq!(d.mode, Mode::Standalone);
        assert_eq!(d.component, Some(Component::Master));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let d = detect(
            NONE,
            &env(&[
                ("FLUID_RUNTIME_TYPE", ""),
                ("FLUID_RUNTIME_COMPONENT_TYPE", " "),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(d.mode, Mode::Standalone);
        assert_eq!(d.component, None);
    }

    #[test]
    fn argument_and_env_must_agree() {
        let err = detect(
            arg(Component::Master),
            &env(&[("FLUID_RUNTIME_COMPONENT_TYPE", "worker")]),
            false,
        )
        .unwrap_err();
        assert!(
            err.what.contains("master") && err.what.contains("worker"),
            "{err}"
        );
        let ok = detect(
            arg(Component::Worker),
            &env(&[("FLUID_RUNTIME_COMPONENT_TYPE", "Worker")]),
            false,
        )
        .unwrap();
        assert_eq!(ok.component_reason, "argument \"worker\"");
    }

    #[test]
    fn unknown_component_type_is_an_error() {
        let err = detect(
            NONE,
            &env(&[("FLUID_RUNTIME_COMPONENT_TYPE", "fuse")]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.location, "env FLUID_RUNTIME_COMPONENT_TYPE");
    }

    #[test]
    fn thin_refuses_server_components() {
        let err = detect(
            arg(Component::Master),
            &env(&[("FLUID_RUNTIME_TYPE", "thin")]),
            false,
        )
        .unwrap_err();
        assert!(err.what.contains("master"));
    }
}
