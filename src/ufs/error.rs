//! Errors of the under-storage layer, and the one place that turns an opendal error into
//! them: each message names the mount (`describe()`), says what went wrong in the
//! storage's own words (an S3 error code when there is one) and what to check.

/// Why an under-storage call failed. Every message starts with the mount it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UfsError {
    /// The file or directory does not exist (or a local mount's directory is missing).
    #[error("{0}")]
    NotFound(String),
    /// The storage refused the credentials or the access (wrong key, signature mismatch,
    /// access denied, an unreadable secret file).
    #[error("{0}")]
    PermissionDenied(String),
    /// The endpoint did not answer (down, DNS, connection refused, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// The bucket does not exist.
    #[error("{0}")]
    NoBucket(String),
    /// The object changed under a read: its etag or size is not the expected one.
    #[error("{0}")]
    Changed(String),
    /// Anything else (a bad path, an unexpected answer).
    #[error("{0}")]
    Other(String),
}

impl UfsError {
    /// The errno a file system reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            UfsError::NotFound(_) => libc::ENOENT,
            UfsError::PermissionDenied(_) => libc::EACCES,
            // The cached copy is stale: the file changed in the storage.
            UfsError::Changed(_) => libc::ESTALE,
            UfsError::Unreachable(_) | UfsError::NoBucket(_) | UfsError::Other(_) => libc::EIO,
        }
    }
}

/// The S3 error code in an opendal error's text (`code: "SignatureDoesNotMatch"`), if any.
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("code: \"")? + "code: \"".len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len]).filter(|c| !c.is_empty())
}

/// The innermost cause of an error (for a network failure: "Connection refused", ...).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// What the mapping needs to know about the mount.
pub(crate) struct MountContext<'a> {
    /// `describe()` of the mount.
    pub mount: &'a str,
    /// The endpoint (S3), for messages.
    pub endpoint: &'a str,
    /// The bucket (S3), empty for a local mount.
    pub bucket: &'a str,
}

/// Turns an opendal error of `op` on `path` (relative to the mount) into a [`UfsError`].
pub(crate) fn from_opendal(
    ctx: &MountContext<'_>,
    op: &str,
    path: &str,
    err: opendal::Error,
) -> UfsError {
    use opendal::ErrorKind as K;
    let text = err.to_string();
    let code = s3_code(&text);
    let mount = ctx.mount;
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" {path}")
    };
    if code == Some("NoSuchBucket") {
        return UfsError::NoBucket(format!(
            "{mount}: the bucket {:?} does not exist at {}: create it or fix the Dataset's mountPoint",
            ctx.bucket, ctx.endpoint
        ));
    }
    if code == Some("InvalidRange") {
        // S3 answers 416 to a range that starts past the end, which opendal does not
        // classify: the object is shorter than its recorded size.
        return UfsError::Changed(format!(
            "{mount}:{at} is shorter than expected during {op} (InvalidRange): the object changed in the storage; reload its metadata"
        ));
    }
    match err.kind() {
        K::NotFound => UfsError::NotFound(format!("{mount}:{at}: no such file or directory ({op})")),
        K::PermissionDenied => {
            let why = code.unwrap_or("403 Forbidden");
            UfsError::PermissionDenied(format!(
                "{mount}: the server refused the credentials ({why}) on {op}{at}: check the access and secret of the mount's encryptOptions and the bucket's policy"
            ))
        }
        K::ConditionNotMatch | K::RangeNotSatisfied => UfsError::Changed(format!(
            "{mount}:{at} changed in the storage during {op} ({}): reload its metadata",
            code.unwrap_or(err.kind().into_static())
        )),
        K::Unexpected if text.contains("send http request") => UfsError::Unreachable(format!(
            "{mount}: cannot reach {} ({}) on {op}{at}: check the endpoint option and that the server is up",
            ctx.endpoint,
            root_cause(&err)
        )),
        K::Unexpected if text.contains("too little data") => UfsError::Changed(format!(
            "{mount}:{at} is shorter than expected during {op}: the object changed in the storage; reload its metadata"
        )),
        _ => UfsError::Other(format!("{mount}: {op}{at} failed: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_opendal_text() {
        assert_eq!(
            s3_code(
                r#"PermissionDenied => S3Error { code: "SignatureDoesNotMatch", message: "" }"#
            ),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(s3_code("NotFound => "), None);
        assert_eq!(s3_code(r#"code: """#), None);
    }

    #[test]
    fn errnos() {
        assert_eq!(UfsError::NotFound(String::new()).errno(), libc::ENOENT);
        assert_eq!(
            UfsError::PermissionDenied(String::new()).errno(),
            libc::EACCES
        );
        assert_eq!(UfsError::Changed(String::new()).errno(), libc::ESTALE);
        assert_eq!(UfsError::Unreachable(String::new()).errno(), libc::EIO);
    }

    #[test]
    fn kinds_map_to_variants_naming_the_mount() {
        let ctx = MountContext {
            mount: "s3://b/p",
            endpoint: "http://127.0.0.1:1",
            bucket: "b",
        };
        let e = from_opendal(
            &ctx,
            "list",
            "",
            opendal::Error::new(
                opendal::ErrorKind::PermissionDenied,
                r#"S3Error { code: "SignatureDoesNotMatch" }"#,
            ),
        );
        assert!(matches!(e, UfsError::PermissionDenied(_)));
        assert!(
            e.to_string().starts_with(
                "s3://b/p: the server refused the credentials (SignatureDoesNotMatch)"
            ),
            "{e}"
        );
        let e = from_opendal(
            &ctx,
            "list",
            "",
            opendal::Error::new(
                opendal::ErrorKind::ConfigInvalid,
                r#"S3Error { code: "NoSuchBucket" }"#,
            ),
        );
        assert!(matches!(e, UfsError::NoBucket(_)), "{e}");
        let e = from_opendal(
            &ctx,
            "read",
            "a/b",
            opendal::Error::new(opendal::ErrorKind::NotFound, "x"),
        );
        assert_eq!(
            e.to_string(),
            "s3://b/p: a/b: no such file or directory (read)"
        );
    }
}
