//! The command line, as clap types. Compatible with the manifests Curvine ships:
//! `curvine-fluid`, `curvine-fluid master|worker|client [start]` and
//! `curvine-fluid fluid-thin-runtime` all detect the mode and run; `render` and
//! `detect` only look.

use crate::mode::{CliHint, Component};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `curvine-fluid`: the Curvine cache runtime for Fluid in one binary.
#[derive(Debug, Parser)]
#[command(name = "curvine-fluid", version, about, long_about = None)]
pub struct Cli {
    /// Use this curvine-cluster.toml as is, instead of rendering one from Fluid's config.
    #[arg(long, global = true, value_name = "FILE")]
    pub conf: Option<PathBuf>,
    /// Log format (default: env CURVINE_LOG_FORMAT, else text).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// What to do; without a command, detect the mode and run the component.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the metadata master.
    Master {
        /// Only `start` is accepted, as in Curvine's manifests.
        action: Option<Action>,
    },
    /// Run the block cache worker.
    Worker {
        /// Only `start` is accepted.
        action: Option<Action>,
    },
    /// Run the FUSE client.
    Client {
        /// Only `start` is accepted.
        action: Option<Action>,
    },
    /// Run as a Fluid ThinRuntime FUSE container.
    #[command(name = "fluid-thin-runtime")]
    FluidThinRuntime,
    /// Print the config that would be written (for `kubectl exec`); writes nothing.
    Render {
        /// The component to render for (default: detected).
        target: Option<Target>,
    },
    /// Print the detected mode and component, and which input decided.
    Detect {
        /// The argument to detect with, as the container would receive it.
        target: Option<Target>,
    },
}

/// The action after a component name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Start the component (the only action).
    Start,
}

/// A component or the ThinRuntime marker, as a positional argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The master.
    Master,
    /// A worker.
    Worker,
    /// The FUSE client.
    Client,
    /// A ThinRuntime FUSE container.
    #[value(name = "fluid-thin-runtime")]
    FluidThinRuntime,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

impl Target {
    fn hint(self) -> CliHint {
        let component = match self {
            Target::Master => Some(Component::Master),
            Target::Worker => Some(Component::Worker),
            Target::Client => Some(Component::Client),
            Target::FluidThinRuntime => None,
        };
        CliHint {
            component,
            thin_argument: self == Target::FluidThinRuntime,
        }
    }
}

impl Cli {
    /// What the command line contributes to mode detection.
    pub fn hint(&self) -> CliHint {
        match &self.command {
            None => CliHint::default(),
            Some(Command::Master { .. }) => Target::Master.hint(),
            Some(Command::Worker { .. }) => Target::Worker.hint(),
            Some(Command::Client { .. }) => Target::Client.hint(),
            Some(Command::FluidThinRuntime) => Target::FluidThinRuntime.hint(),
            Some(Command::Render { target }) | Some(Command::Detect { target }) => {
                target.map(Target::hint).unwrap_or_default()
            }
        }
    }

    /// Whether this command prints a result on stdout (so logs must go to stderr).
    pub fn prints_result(&self) -> bool {
        matches!(
            self.command,
            Some(Command::Render { .. }) | Some(Command::Detect { .. })
        )
    }
}
