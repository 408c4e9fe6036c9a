//! A Fluid mount (`mountPoint`, `options`, `encryptOptions`) turned into a [`UfsSpec`]:
//! the mount point's scheme, the option keys Curvine and its Fluid scripts accept (every
//! alias mapped to one canonical name), defaults, and one-line errors that name the key
//! and the fix. Unknown keys are warnings, never errors.
//!
//! Reads the file system only to tell a secret file path from an inline value, and to
//! read a non-credential key given through `encryptOptions` (a plain setting kept in a
//! secret); credential files are read later, by `Ufs::open`.

use super::spec::{SecretSource, UfsKind, UfsSpec};
use crate::config::secrets::is_secret_path;
use crate::config::units::parse_duration;
use std::collections::BTreeMap;
use std::path::Path;

/// The region an S3 mount signs for when it names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// What an accepted option key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Endpoint,
    Region,
    PathStyle,
    /// A credential, by canonical name.
    Credential(&'static str),
    SyncInterval,
}

impl Key {
    /// The canonical name the key sets.
    fn canonical(self) -> &'static str {
        match self {
            Key::Endpoint => "endpoint",
            Key::Region => "region",
            Key::PathStyle => "path_style",
            Key::Credential(name) => name,
            Key::SyncInterval => "sync_interval",
        }
    }

    fn is_s3_only(self) -> bool {
        self != Key::SyncInterval
    }
}

/// Every accepted key: Curvine's own names, the short names of its Fluid mountUFS
/// script, and a few obvious spellings.
fn classify(key: &str) -> Option<Key> {
    Some(match key {
        "s3.endpoint_url" | "endpoint_url" | "endpoint" => Key::Endpoint,
        "s3.region_name" | "region_name" | "region" => Key::Region,
        "s3.force.path.style" | "path_style" => Key::PathStyle,
        "s3.credentials.access" | "access" | "access-key" | "access_key" | "access_key_id" => {
            Key::Credential("access")
        }
        "s3.credentials.secret" | "secret" | "secret-key" | "secret_key" | "secret_access_key" => {
            Key::Credential("secret")
        }
        "s3.credentials.session_token" | "session_token" => Key::Credential("session_token"),
        "sync_interval" => Key::SyncInterval,
        _ => return None,
    })
}

/// Where a key was given, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Options,
    EncryptOptions,
}

impl Origin {
    fn field(self) -> &'static str {
        match self {
            Origin::Options => "options",
            Origin::EncryptOptions => "encryptOptions",
        }
    }
}

/// One key's value as given, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Given {
    Plain(String),
    Secret(SecretSource),
}

/// The value of each canonical name, and the key (with its origin) that gave it.
type Collected = BTreeMap<&'static str, (String, Given)>;

impl UfsSpec {
    /// Builds a spec from a Fluid mount: `mount_point` (`s3://bucket[/prefix]`,
    /// `local:///dir`, `file:///dir`), its plain `options` (in ThinRuntime configmap mode a
    /// credential's value may be the path of a mounted secret file: it then becomes
    /// [`SecretSource::File`]) and `encrypt_options` (name -> secret file path).
    ///
    /// Returns the spec and one warning per key that is ignored. Errors are one line that
    /// names the key and the fix.
    pub fn from_fluid(
        mount_point: &str,
        options: &BTreeMap<String, String>,
        encrypt_options: &BTreeMap<String, String>,
    ) -> Result<(UfsSpec, Vec<String>), String> {
        let kind = parse_mount_point(mount_point)?;
        let mut spec = UfsSpec {
            kind,
            options: BTreeMap::new(),
            secrets: BTreeMap::new(),
            sync_interval_ms: None,
        };
        let mount = spec.describe();
        let is_s3 = matches!(spec.kind, UfsKind::S3 { .. });
        let mut warnings = Vec::new();
        let mut collected = Collected::new();
        let given = options.iter().map(|(k, v)| (Origin::Options, k, v)).chain(
            encrypt_options
                .iter()
                .map(|(k, v)| (Origin::EncryptOptions, k, v)),
        );
        for (origin, raw_key, value) in given {
            let field = origin.field();
            let key_name = raw_key.trim();
            let Some(key) = classify(key_name) else {
                warnings.push(format!(
                    "unknown {} {key_name:?} of mount {mount} is ignored",
                    if origin == Origin::Options {
                        "option"
                    } else {
                        "encryptOptions key"
                    }
                ));
                continue;
            };
            if key.is_s3_only() && !is_s3 {
                warnings.push(format!(
                    "{field} key {key_name:?} of mount {mount} is for s3:// mounts and is ignored"
                ));
                continue;
            }
            let value = given_value(key, origin, key_name, value, &mount)?;
            let label = format!("{field} key {key_name:?}");
            match collected.get(key.canonical()) {
                Some((first, earlier)) if *earlier != value => {
                    return Err(format!(
                        "mount {mount}: {first} and {label} both set {} with different values: keep one",
                        key.canonical()
                    ));
                }
                Some(_) => {}
                None => {
                    collected.insert(key.canonical(), (label, value));
                }
            }
        }
        apply(&mut spec, collected, &mount)?;
        Ok((spec, warnings))
    }
}

/// The value of one accepted key: a plain string, or where a credential comes from.
fn given_value(
    key: Key,
    origin: Origin,
    key_name: &str,
    value: &str,
    mount: &str,
) -> Result<Given, String> {
    let field = origin.field();
    let value = value.trim();
    if value.is_empty() {
        return Err(format!(
            "{field} key {key_name:?} of mount {mount} is empty: give a value or remove the key"
        ));
    }
    match (key, origin) {
        (Key::Credential(_), Origin::Options) => {
            // ThinRuntime's configmap mode hands a secret over as the path of its file.
            let is_file = value.starts_with('/')
                && (is_secret_path(value) || Path::new(value).is_file());
            Ok(Given::Secret(if is_file {
                SecretSource::File(value.to_string())
            } else {
                SecretSource::Value(value.to_string())
            }))
        }
        (_, Origin::EncryptOptions) if !value.starts_with('/') => Err(format!(
            "encryptOptions key {key_name:?} of mount {mount} is not a file path: Fluid passes the path of the mounted secret key; check the Dataset's secretKeyRef"
        )),
        (Key::Credential(_), Origin::EncryptOptions) => {
            Ok(Given::Secret(SecretSource::File(value.to_string())))
        }
        // A plain setting kept in a secret: its content is the value.
        (_, Origin::EncryptOptions) => read_secret_file(value)
            .map(|content| Given::Plain(content.trim().to_string()))
            .map_err(|e| {
                format!(
                    "encryptOptions key {key_name:?} of mount {mount}: cannot read {value}: {e}: check that the secret is mounted in this pod"
                )
            }),
        (_, Origin::Options) => Ok(Given::Plain(value.to_string())),
    }
}

/// A secret file's content, less one trailing newline (`\n` or `\r\n`).
pub fn read_secret_file(path: &str) -> std::io::Result<String> {
    let mut content = std::fs::read_to_string(path)?;
    if content.ends_with('\n') {
        content.pop();
        if content.ends_with('\r') {
            content.pop();
        }
    }
    Ok(content)
}

/// Validates the collected values and fills `spec` (defaults included).
fn apply(spec: &mut UfsSpec, mut collected: Collected, mount: &str) -> Result<(), String> {
    if let Some((label, Given::Plain(v))) = collected.remove("sync_interval") {
        spec.sync_interval_ms = Some(
            parse_sync_interval(&v)
                .map_err(|e| format!("{label} of mount {mount} is {v:?}: {e}"))?,
        );
    }
    if !matches!(spec.kind, UfsKind::S3 { .. }) {
        return Ok(());
    }
    let plain = |collected: &mut Collected, name: &str| match collected.remove(name) {
        Some((label, Given::Plain(v))) => Some((label, v)),
        _ => None,
    };
    let endpoint = match plain(&mut collected, "endpoint") {
        Some((label, v)) => Some(
            normalize_endpoint(&v)
                .map_err(|e| format!("{label} of mount {mount} is {v:?}: {e}"))?,
        ),
        None => None,
    };
    let region = match plain(&mut collected, "region") {
        Some((label, v)) => {
            if v.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{label} of mount {mount} is {v:?}: a region is one word such as us-east-1"
                ));
            }
            v
        }
        None => DEFAULT_REGION.to_string(),
    };
    // Servers reached through an explicit endpoint (MinIO, Ceph, ...) mostly have no
    // wildcard DNS for bucket subdomains, so path style is their safe default; AWS's own
    // endpoint prefers virtual-host style.
    let path_style = match plain(&mut collected, "path_style") {
        Some((label, v)) => match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(format!(
                    "{label} of mount {mount} is {v:?}: write true (path style) or false (virtual-host style)"
                ))
            }
        },
        None => endpoint.is_some(),
    };
    if let Some(endpoint) = endpoint {
        spec.options.insert("endpoint".into(), endpoint);
    }
    spec.options.insert("region".into(), region);
    spec.options
        .insert("path_style".into(), path_style.to_string());
    for (name, (_, given)) in collected {
        if let Given::Secret(source) = given {
            spec.secrets.insert(name.to_string(), source);
        }
    }
    let has = |name: &str| spec.secrets.contains_key(name);
    if has("access") != has("secret") {
        let (present, missing) = if has("access") {
            ("an access key", "secret")
        } else {
            ("a secret key", "access")
        };
        return Err(format!(
            "mount {mount} has {present} but no {missing}: set both access and secret (in encryptOptions) or neither for anonymous access"
        ));
    }
    if has("session_token") && !has("access") {
        return Err(format!(
            "mount {mount} has a session_token but no access and secret: set all three"
        ));
    }
    Ok(())
}

/// `sync_interval` in ms: `-1` (load once), `0` (check every time) or a duration such as
/// `500ms`, `30s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_sync_interval(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "-1" {
        return Ok(-1);
    }
    let d = parse_duration(text).map_err(|_| {
        "write a duration such as 500ms, 30s or 5m, 0 to check every time, or -1 to load once"
            .to_string()
    })?;
    i64::try_from(d.as_millis()).map_err(|_| "the duration is too long".to_string())
}

/// An endpoint URL without its trailing `/`; it must be `http://` or `https://` with a host.
fn normalize_endpoint(v: &str) -> Result<String, String> {
    let fix = "an endpoint is a URL such as http://minio.ns.svc:9000 or https://s3.us-east-1.amazonaws.com";
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("it must start with http:// or https://: {fix}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it has no host or has blanks: {fix}"));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// `s3://bucket[/prefix]`, `local:///dir` or `file:///dir` into a [`UfsKind`].
fn parse_mount_point(mount_point: &str) -> Result<UfsKind, String> {
    let mp = mount_point.trim();
    let (scheme, rest) = mp.split_once("://").ok_or_else(|| {
        format!(
            "mountPoint {mount_point:?} has no scheme: use s3://bucket[/prefix] or local:///dir"
        )
    })?;
    match scheme.to_ascii_lowercase().as_str() {
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            check_bucket(bucket).map_err(|e| {
                format!("mountPoint {mount_point:?} has an invalid bucket name {bucket:?}: {e}")
            })?;
            let prefix = clean_components(prefix)
                .map_err(|e| format!("mountPoint {mount_point:?}: {e}"))?;
            Ok(UfsKind::S3 {
                bucket: bucket.to_string(),
                prefix,
            })
        }
        "local" | "file" => {
            if !rest.starts_with('/') {
                return Err(format!(
                    "mountPoint {mount_point:?} is not an absolute directory: write {scheme}:///{rest} (three slashes)"
                ));
            }
            let dir = clean_components(rest)
                .map_err(|e| format!("mountPoint {mount_point:?}: {e}"))?;
            Ok(UfsKind::Local {
                root: format!("/{dir}"),
            })
        }
        _ => Err(format!(
            "mountPoint {mount_point:?} is not supported as under storage: use s3://bucket[/prefix] or local:///dir (alias file:///dir)"
        )),
    }
}

/// A `/`-separated path without empty components; `.`, `..` and NUL are refused.
fn clean_components(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        // Control characters (NUL, a newline) name no object anyone meant, and would
        // break the one-line messages that print the mount.
        if part == "." || part == ".." || part.chars().any(char::is_control) {
            return Err(format!(
                "the path {path:?} has a {part:?} component: write the path without it"
            ));
        }
        parts.push(part);
    }
    Ok(parts.join("/"))
}

/// S3's bucket naming rules (the portable subset every S3-compatible server accepts).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let rule = "bucket names are 3-63 characters of lowercase letters, digits, dots and dashes, starting and ending with a letter or digit";
    let bytes = bucket.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-');
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&bytes.len())
        || !valid_chars
        || !alnum(bytes.first())
        || !alnum(bytes.last())
        || bucket.contains("..")
    {
        return Err(rule.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_mount_paths_are_refused_on_one_line() {
        // Found by the fuzz pass: "local:///s3:/\n0" was accepted, and every later
        // message naming the mount broke over two lines.
        let none = BTreeMap::new();
        for mp in ["local:///s3:/\n0", "s3://bucket/a\u{0}b", "file:///x/\ty"] {
            let e = UfsSpec::from_fluid(mp, &none, &none).unwrap_err();
            assert!(e.contains("component"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(UfsSpec::from_fluid("local:///a b/é", &none, &none).is_ok());
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(
        mp: &str,
        opts: &[(&str, &str)],
        enc: &[(&str, &str)],
    ) -> Result<(UfsSpec, Vec<String>), String> {
        UfsSpec::from_fluid(mp, &map(opts), &map(enc))
    }

    #[test]
    fn curvine_and_script_names_give_the_same_spec() {
        let long = parse(
            "s3://ml-datasets/imagenet",
            &[
                ("s3.endpoint_url", "http://minio:9000/"),
                ("s3.region_name", "eu-west-1"),
                ("s3.force.path.style", "false"),
                ("s3.credentials.access", "AK"),
                ("s3.credentials.secret", "SK"),
            ],
            &[],
        )
        .unwrap();
        for (access, secret) in [
            ("access", "secret"),
            ("access-key", "secret-key"),
            ("access_key", "secret_key"),
            ("access_key_id", "secret_access_key"),
        ] {
            let short = parse(
                "s3://ml-datasets/imagenet/",
                &[
                    ("endpoint_url", "http://minio:9000"),
                    ("region_name", "eu-west-1"),
                    ("path_style", "FALSE"),
                    (access, "AK"),
                    (secret, "SK"),
                ],
                &[],
            )
            .unwrap();
            assert_eq!(short, long, "{access}/{secret}");
        }
        let (spec, warnings) = long;
        assert!(warnings.is_empty());
        assert_eq!(
            spec.kind,
            UfsKind::S3 {
                bucket: "ml-datasets".into(),
                prefix: "imagenet".into()
            }
        );
        assert_eq!(spec.option("endpoint"), Some("http://minio:9000"));
        assert_eq!(spec.option("region"), Some("eu-west-1"));
        assert_eq!(spec.option("path_style"), Some("false"));
        assert_eq!(spec.secrets["access"], SecretSource::Value("AK".into()));
        let (alt, _) = parse(
            "s3://ml-datasets/imagenet",
            &[("endpoint", "http://minio:9000"), ("region", "eu-west-1")],
            &[],
        )
        .unwrap();
        assert_eq!(alt.option("region"), Some("eu-west-1"));
    }

    #[test]
    fn defaults_depend_on_the_endpoint() {
        let (aws, _) = parse("s3://bucket", &[], &[]).unwrap();
        assert_eq!(aws.option("region"), Some(DEFAULT_REGION));
        assert_eq!(aws.option("path_style"), Some("false"));
        assert_eq!(aws.option("endpoint"), None);
        assert!(aws.secrets.is_empty());
        assert_eq!(aws.sync_interval_ms, None);
        let (minio, _) = parse("s3://bucket", &[("endpoint_url", "https://m:9000")], &[]).unwrap();
        assert_eq!(minio.option("path_style"), Some("true"));
    }

    #[test]
    fn the_fixture_mount_parses_with_secret_files() {
        // fixtures c05: Fluid's encryptOptions are file paths under /etc/fluid/secrets.
        let (spec, warnings) = parse(
            "s3://ml-datasets/imagenet",
            &[
                ("endpoint_url", "http://minio.ml.svc.cluster.local:9000"),
                ("path_style", "true"),
                ("region_name", "us-east-1"),
            ],
            &[
                ("access", "/etc/fluid/secrets/imagenet-s3-cred/access-key"),
                ("secret", "/etc/fluid/secrets/imagenet-s3-cred/secret-key"),
            ],
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            spec.secrets["secret"],
            SecretSource::File("/etc/fluid/secrets/imagenet-s3-cred/secret-key".into())
        );
        assert_eq!(spec.describe(), "s3://ml-datasets/imagenet");
    }

    #[test]
    fn an_option_naming_an_existing_file_is_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sk");
        std::fs::write(&file, "SECRET\n").unwrap();
        let file = file.to_str().unwrap();
        let (spec, _) = parse(
            "s3://bucket",
            &[("access", "AK"), ("secret_key", file)],
            &[],
        )
        .unwrap();
        assert_eq!(spec.secrets["secret"], SecretSource::File(file.into()));
        assert_eq!(spec.secrets["access"], SecretSource::Value("AK".into()));
        assert_eq!(read_secret_file(file).unwrap(), "SECRET");
        let debug = format!("{spec:?}");
        assert!(!debug.contains("AK\""), "{debug}");
    }

    #[test]
    fn unknown_and_misplaced_keys_are_warnings() {
        let (_, warnings) = parse("s3://b-1/p", &[("foo", "1")], &[("bar", "/x")]).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown option \"foo\" of mount s3://b-1/p is ignored",
                "unknown encryptOptions key \"bar\" of mount s3://b-1/p is ignored",
            ]
        );
        let (local, warnings) = parse(
            "local:///data/set/",
            &[("endpoint_url", "http://x"), ("sync_interval", "5m")],
            &[("access", "/etc/fluid/secrets/a/b")],
        )
        .unwrap();
        assert_eq!(
            local.kind,
            UfsKind::Local {
                root: "/data/set".into()
            }
        );
        assert_eq!(local.sync_interval_ms, Some(300_000));
        assert!(local.options.is_empty() && local.secrets.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("\"endpoint_url\"") && warnings[0].contains("s3:// mounts"));
        let (file, _) = parse("file:///d", &[], &[]).unwrap();
        assert_eq!(file.describe(), "local:///d");
    }

    #[test]
    fn sync_interval_forms() {
        for (text, ms) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("500ms", 500),
            ("0", 0),
            ("-1", -1),
            ("2", 2_000),
        ] {
            let (spec, _) = parse("s3://bucket", &[("sync_interval", text)], &[]).unwrap();
            assert_eq!(spec.sync_interval_ms, Some(ms), "{text}");
        }
        let err = parse("s3://bucket", &[("sync_interval", "soon")], &[]).unwrap_err();
        assert!(
            err.contains("\"sync_interval\"") && err.contains("-1 to load once"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let err = parse("s3://bucket", &[("endpoint_url", "minio:9000")], &[]).unwrap_err();
        assert!(
            err.contains("\"endpoint_url\"") && err.contains("http:// or https://"),
            "{err}"
        );
        let err = parse("s3://bucket", &[("s3.force.path.style", "yes")], &[]).unwrap_err();
        assert!(
            err.contains("\"s3.force.path.style\"") && err.contains("true"),
            "{err}"
        );
        let err = parse(
            "s3://bucket",
            &[("region_name", "a"), ("s3.region_name", "b")],
            &[],
        )
        .unwrap_err();
        assert!(err.contains("keep one"), "{err}");
        let err = parse("s3://bucket", &[("access", "AK")], &[]).unwrap_err();
        assert!(err.contains("no secret"), "{err}");
        let err = parse("s3://bucket", &[("access", " ")], &[]).unwrap_err();
        assert!(err.contains("is empty"), "{err}");
        let err = parse("s3://bucket", &[], &[("secret", "sk-inline")]).unwrap_err();
        assert!(err.contains("not a file path"), "{err}");
        let err = parse("s3://bucket", &[], &[("endpoint_url", "/nonexistent/ep")]).unwrap_err();
        assert!(err.contains("cannot read /nonexistent/ep"), "{err}");
        // The same credential twice from the same source is fine.
        parse(
            "s3://bucket",
            &[("access", "AK"), ("access_key", "AK"), ("secret", "S")],
            &[],
        )
        .unwrap();
    }

    #[test]
    fn mount_points_are_checked() {
        for bad in [
            "s3://ab",
            "s3://Upper",
            "s3://under_score",
            "s3://-dash",
            "s3://dots..x",
            "s3://",
        ] {
            let err = parse(bad, &[], &[]).unwrap_err();
            assert!(err.contains("invalid bucket name"), "{bad}: {err}");
        }
        let long = format!("s3://{}", "a".repeat(64));
        assert!(parse(&long, &[], &[]).is_err());
        assert!(parse(&format!("s3://{}", "a".repeat(63)), &[], &[]).is_ok());
        assert!(parse("s3://my.bucket-1/a//b/", &[], &[]).is_ok());
        assert!(parse("s3://b-1/a/../b", &[], &[])
            .unwrap_err()
            .contains("\"..\""));
        assert!(parse("local://data", &[], &[])
            .unwrap_err()
            .contains("local:///data"));
        assert!(parse("hdfs://nn/x", &[], &[])
            .unwrap_err()
            .contains("s3://bucket"));
        assert!(parse("/just/a/path", &[], &[])
            .unwrap_err()
            .contains("no scheme"));
        let (s, _) = parse("S3://b-1//x/y/", &[], &[]).unwrap();
        assert_eq!(s.describe(), "s3://b-1/x/y");
    }
}
