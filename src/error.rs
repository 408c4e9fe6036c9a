//! The error a user sees, and the exit code it maps to.
//!
//! Bad input (a config file, an environment variable, a command-line value) is an
//! [`InputError`]: one line saying what is wrong, where, and how to fix it; exit code 2.
//! Everything else that stops the binary is an [`Error`] with exit code 1.

use std::path::PathBuf;

/// Bad input, reported as `<what> (<where>): <how to fix>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} ({location}): {fix}")]
pub struct InputError {
    /// What is wrong, e.g. `"abc" is not a whole number`.
    pub what: String,
    /// Where: a file and JSON path, a TOML key, or an environment variable.
    pub location: String,
    /// What the user changes to fix it.
    pub fix: String,
}

impl InputError {
    /// Builds an input error from its three parts.
    pub fn new(
        what: impl Into<String>,
        location: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            what: what.into(),
            location: location.into(),
            fix: fix.into(),
        }
    }
}

/// A parser's message on one line: its lines (toml_edit writes two) joined with `: `.
pub fn single_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Why the binary stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is wrong; nothing was written.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A file could not be written or a directory created.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file system operation failed.
    #[error(transparent)]
    Fs(#[from] crate::fs_error::FsError),
    /// A role failed to start or stopped with an error.
    #[error("{0}")]
    Role(String),
}

impl Error {
    /// The process exit code: 2 for bad input, 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Write { .. } | Error::Fs(_) | Error::Role(_) => 1,
        }
    }

    /// The message on one line, as printed after `error: `.
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}
