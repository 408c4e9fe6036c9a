//! Option values that are secrets: Fluid passes an encrypt option as the path of a file
//! under `/etc/fluid/secrets/` (FLUID-CONTRACT §4.3); the value is that file's content.
//!
//! Rendering asks a [`SecretSource`] for the content, so tests can supply secrets without
//! touching `/etc`. The content is never logged: callers record it for redaction.

use crate::env::FLUID_SECRETS_PREFIX;
use std::path::{Component, Path, PathBuf};

/// Reads the content behind a `/etc/fluid/secrets/...` path.
pub trait SecretSource {
    /// The content (surrounding blanks removed), or why it cannot be read.
    fn read(&self, fluid_path: &str) -> Result<String, String>;
}

/// Secrets mounted as files under a directory (`/etc/fluid/secrets` in a pod).
#[derive(Debug, Clone)]
pub struct SecretDir {
    root: PathBuf,
}

impl SecretDir {
    /// Secrets under `root`, which stands for `/etc/fluid/secrets`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

/// Whether an option value is a reference to a Fluid secret file.
pub fn is_secret_path(value: &str) -> bool {
    value.trim().starts_with(FLUID_SECRETS_PREFIX)
}

impl SecretSource for SecretDir {
    fn read(&self, fluid_path: &str) -> Result<String, String> {
        let rest = fluid_path
            .trim()
            .strip_prefix(FLUID_SECRETS_PREFIX)
            .ok_or_else(|| format!("{fluid_path} is not under {FLUID_SECRETS_PREFIX}"))?;
        let relative = Path::new(rest);
        if rest.is_empty()
            || relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "{fluid_path} does not name a file inside {FLUID_SECRETS_PREFIX}"
            ));
        }
        let file = self.root.join(relative);
        std::fs::read_to_string(&file)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read secret file {fluid_path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_under_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("s/k"), "value\n").unwrap();
        let src = SecretDir::new(dir.path());
        assert_eq!(src.read("/etc/fluid/secrets/s/k").unwrap(), "value");
        assert!(src.read("/etc/fluid/secrets/../x").is_err());
        assert!(src
            .read("/etc/fluid/secrets/s/missing")
            .unwrap_err()
            .contains("cannot read"));
        assert!(src.read("/tmp/x").is_err());
        assert!(is_secret_path(" /etc/fluid/secrets/a/b"));
        assert!(!is_secret_path("/etc/fluid/config/a"));
    }
}
