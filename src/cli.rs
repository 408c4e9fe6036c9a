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
        /// Print values read from secret files instead of masking them.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Print the detected mode and component, and which input decided.
    Detect {
        /// The argument to detect with, as the container would receive it.
        target: Option<Target>,
    },
    /// Master and worker in one process on loopback, for trying it on a laptop.
    Standalone {
        /// Where metadata, journal and cache blocks go.
        #[arg(long, value_name = "DIR", default_value = "curvine-data")]
        data_dir: PathBuf,
        /// Also mount the file system here with FUSE (master, worker and client in one).
        #[arg(long, value_name = "DIR")]
        mnt: Option<PathBuf>,
    },
    /// Unmount a FUSE mount (lazily when busy); succeeds when nothing is mounted. For
    /// preStop hooks.
    Umount {
        /// The mount point (default: env FLUID_RUNTIME_MOUNT_PATH, else MOUNT_POINT).
        path: Option<PathBuf>,
    },
    /// Fluid's mountUFS entry: make the cluster's mount table match the runtime config's
    /// mounts; prints {"mounted":[...]}.
    #[command(name = "mount-ufs")]
    MountUfs,
    /// Fluid's reportSummary entry: prints the cache state as JSON strings.
    #[command(name = "report-summary")]
    ReportSummary,
    /// Fluid's DataLoad: read every file under the paths (default: env
    /// FLUID_DATALOAD_DATA_PATH) through the workers; non-zero exit when any fails.
    Load {
        /// Dataset paths to load instead of the env's.
        paths: Vec<String>,
    },
    /// File system commands against the cluster in the config.
    Fs {
        /// The command.
        #[command(subcommand)]
        op: FsOp,
    },
    /// Capacity, usage, masters and workers of the cluster.
    Report {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `curvine-fluid fs ...`.
#[derive(Debug, Subcommand)]
pub enum FsOp {
    /// List a directory (or show a file).
    Ls {
        /// Path in the cluster.
        #[arg(default_value = "/")]
        path: String,
        /// Long format: kind, mode, size, mtime, name.
        #[arg(short = 'l')]
        long: bool,
    },
    /// Create a directory.
    Mkdir {
        /// Create missing parents; no error if it exists.
        #[arg(short = 'p')]
        parents: bool,
        /// Path in the cluster.
        path: String,
    },
    /// Copy a local file (or `-` for stdin) into the cluster.
    Put {
        /// Local file, or `-`.
        local: PathBuf,
        /// Path in the cluster.
        remote: String,
    },
    /// Copy a file from the cluster to a local file (or `-` for stdout).
    Get {
        /// Path in the cluster.
        remote: String,
        /// Local file, or `-`.
        local: PathBuf,
    },
    /// Print a file.
    Cat {
        /// Path in the cluster.
        path: String,
    },
    /// Remove a file or an empty directory.
    Rm {
        /// Remove directories and their contents.
        #[arg(short = 'r')]
        recursive: bool,
        /// Path in the cluster.
        path: String,
    },
    /// Rename or move.
    Mv {
        /// Source path.
        src: String,
        /// Destination path.
        dst: String,
    },
    /// Show a path's status.
    Stat {
        /// Path in the cluster.
        path: String,
    },
    /// Bytes and files under a path.
    Du {
        /// Path in the cluster.
        #[arg(default_value = "/")]
        path: String,
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
            Some(Command::Render { target, .. }) | Some(Command::Detect { target }) => {
                target.map(Target::hint).unwrap_or_default()
            }
            Some(Command::Standalone { .. })
            | Some(Command::Umount { .. })
            | Some(Command::MountUfs)
            | Some(Command::ReportSummary)
            | Some(Command::Load { .. })
            | Some(Command::Fs { .. })
            | Some(Command::Report { .. }) => CliHint::default(),
        }
    }

    /// Whether this command prints a result on stdout (so logs must go to stderr).
    pub fn prints_result(&self) -> bool {
        matches!(
            self.command,
            Some(Command::Render { .. })
                | Some(Command::Detect { .. })
                | Some(Command::MountUfs)
                | Some(Command::ReportSummary)
        )
    }
}
