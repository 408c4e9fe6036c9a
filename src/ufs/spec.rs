//! What backs a mount: [`UfsSpec`], the value kept in the replicated mount table. It
//! holds where the data lives, the plain options and where each credential comes from;
//! a credential value given inline is masked in every human-readable form (`Debug`,
//! [`UfsSpec::masked`]). Parsing Fluid's mount into a spec is in `fluid.rs`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What the masked forms print instead of a secret value.
pub const MASK: &str = "***";

/// The storage behind a mount and the options to reach it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UfsSpec {
    /// Where the data lives.
    pub kind: UfsKind,
    /// Canonical plain options: `endpoint`, `region`, `path_style` (`"true"`/`"false"`).
    /// Keys the parser does not know are warned about and not kept.
    pub options: BTreeMap<String, String>,
    /// Canonical credential name (`access`, `secret`, `session_token`) -> where its value
    /// comes from.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Metadata freshness of this mount in ms: `None` = the cluster default, `Some(0)` =
    /// check every time, `Some(-1)` = load once.
    pub sync_interval_ms: Option<i64>,
}

/// Where a mount's data lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UfsKind {
    /// An S3 bucket, under a key prefix.
    S3 {
        /// The bucket name (validated).
        bucket: String,
        /// The key prefix without leading or trailing `/`; empty for the whole bucket.
        prefix: String,
    },
    /// A directory every worker sees (a host path, NFS, ...).
    Local {
        /// The directory, absolute, without trailing `/` (except `/` itself).
        root: String,
    },
}

/// Where a credential's value comes from.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// A mounted secret file: the value is its content less one trailing newline.
    File(String),
    /// Given inline as a plain option: masked everywhere it could be seen.
    Value(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Value(_) => f.debug_tuple("Value").field(&MASK).finish(),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "file {path}"),
            SecretSource::Value(_) => write!(f, "inline value {MASK}"),
        }
    }
}

impl fmt::Debug for UfsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SecretSource's own Debug masks inline values.
        f.debug_struct("UfsSpec")
            .field("kind", &self.kind)
            .field("options", &self.options)
            .field("secrets", &self.secrets)
            .field("sync_interval_ms", &self.sync_interval_ms)
            .finish()
    }
}

impl UfsSpec {
    /// `s3://bucket/prefix`, `s3://bucket` or `local:///dir` (never a secret).
    pub fn describe(&self) -> String {
        match &self.kind {
            UfsKind::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            UfsKind::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            UfsKind::Local { root } => format!("local://{root}"),
        }
    }

    /// A copy safe to show people (JSON reports, logs): inline secret values replaced
    /// by [`MASK`]. The spec itself keeps them, since the workers need them.
    pub fn masked(&self) -> UfsSpec {
        let mut spec = self.clone();
        for source in spec.secrets.values_mut() {
            if let SecretSource::Value(v) = source {
                *v = MASK.to_string();
            }
        }
        spec
    }

    /// A plain option by canonical name.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UfsSpec {
        UfsSpec {
            kind: UfsKind::S3 {
                bucket: "b".into(),
                prefix: "p/q".into(),
            },
            options: BTreeMap::from([("region".into(), "us-east-1".into())]),
            secrets: BTreeMap::from([
                ("access".into(), SecretSource::Value("AKIAVISIBLE".into())),
                (
                    "secret".into(),
                    SecretSource::File("/etc/fluid/secrets/c/secret".into()),
                ),
            ]),
            sync_interval_ms: Some(30_000),
        }
    }

    #[test]
    fn debug_and_masked_hide_inline_values_only() {
        let s = spec();
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("AKIAVISIBLE"), "{debug}");
        assert!(debug.contains("/etc/fluid/secrets/c/secret"), "{debug}");
        assert!(debug.contains(MASK));
        let json = serde_json::to_string(&s.masked()).unwrap();
        assert!(!json.contains("AKIAVISIBLE"), "{json}");
        assert_eq!(
            s.secrets["access"].to_string(),
            format!("inline value {MASK}")
        );
        // The machine form keeps the value: workers read it from the mount table.
        let back: UfsSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn describe_names_the_storage() {
        assert_eq!(spec().describe(), "s3://b/p/q");
        let mut s = spec();
        s.kind = UfsKind::S3 {
            bucket: "b".into(),
            prefix: String::new(),
        };
        assert_eq!(s.describe(), "s3://b");
        s.kind = UfsKind::Local { root: "/d".into() };
        assert_eq!(s.describe(), "local:///d");
    }
}
