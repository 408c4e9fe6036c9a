//! Errors of file system operations, shared by the master, the client library, the CLI
//! and the FUSE client (which maps them to errno in one place).

use serde::{Deserialize, Serialize};

/// Why a file system operation failed. Each variant is stable across the wire (its
/// [`FsError::kind`] travels in gRPC metadata), so a client gets back the same variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum FsError {
    /// The path or one of its parents does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// The path exists already.
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// A parent in the path, or the target of a directory operation, is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A file operation was applied to a directory.
    #[error("{0}: is a directory")]
    IsADirectory(String),
    /// The directory has entries.
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    /// The path is malformed (not absolute, escapes the root, bad name).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// An argument makes no sense for the operation (e.g. a directory into itself).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation is not permitted on this kind of file (a hard link to a directory).
    #[error("{0}: operation not permitted")]
    NotPermitted(String),
    /// The file has as many names as it may have.
    #[error("{0}: too many links")]
    TooManyLinks(String),
    /// The extended attribute does not exist.
    #[error("{0}: no such attribute")]
    NoAttribute(String),
    /// A move or link between two mounts (the caller copies instead).
    #[error("{0}: not on the same mount")]
    CrossDevice(String),
    /// The path is on a read-only mount.
    #[error("{0}: read-only file system")]
    ReadOnly(String),
    /// The operation or attribute namespace is not supported here.
    #[error("{0}: not supported")]
    NotSupported(String),
    /// A value is larger than the operation allows (an extended attribute's).
    #[error("{0}: too big")]
    TooBig(String),
    /// A name or size is out of the range the operation takes.
    #[error("{0}: out of range")]
    OutOfRange(String),
    /// No worker has room for the data.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// The cluster, a master or a worker cannot serve the request now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This master is not the leader; the leader's address when known.
    #[error("not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// The leader's address (`host:port`), if known.
        leader: Option<String>,
    },
    /// The cluster requires its token and this process sent none or a wrong one (not
    /// retried: the same token fails again).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A worker refused the block token of a request (missing, expired, forged, or for
    /// another block or mode). Not retried as is: a reader locates the file again for a
    /// fresh token, once.
    #[error("block token refused: {0}")]
    BlockToken(String),
    /// Local or remote I/O failed.
    #[error("I/O error: {0}")]
    Io(String),
}

impl FsError {
    /// The stable name of the variant, as sent over the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            FsError::NotFound(_) => "not_found",
            FsError::AlreadyExists(_) => "already_exists",
            FsError::NotADirectory(_) => "not_a_directory",
            FsError::IsADirectory(_) => "is_a_directory",
            FsError::NotEmpty(_) => "not_empty",
            FsError::NotPermitted(_) => "not_permitted",
            FsError::TooManyLinks(_) => "too_many_links",
            FsError::NoAttribute(_) => "no_attribute",
            FsError::NotSupported(_) => "not_supported",
            FsError::ReadOnly(_) => "read_only",
            FsError::CrossDevice(_) => "cross_device",
            FsError::TooBig(_) => "too_big",
            FsError::OutOfRange(_) => "out_of_range",
            FsError::InvalidPath(_) => "invalid_path",
            FsError::InvalidArgument(_) => "invalid_argument",
            FsError::NoSpace(_) => "no_space",
            FsError::Unavailable(_) => "unavailable",
            FsError::NotLeader { .. } => "not_leader",
            FsError::Unauthenticated(_) => "unauthenticated",
            FsError::BlockToken(_) => "block_token",
            FsError::Io(_) => "io",
        }
    }

    /// The text carried with the variant.
    pub fn detail(&self) -> String {
        match self {
            FsError::NotFound(s)
            | FsError::AlreadyExists(s)
            | FsError::NotADirectory(s)
            | FsError::IsADirectory(s)
            | FsError::NotEmpty(s)
            | FsError::NotPermitted(s)
            | FsError::TooManyLinks(s)
            | FsError::NoAttribute(s)
            | FsError::NotSupported(s)
            | FsError::ReadOnly(s)
            | FsError::CrossDevice(s)
            | FsError::TooBig(s)
            | FsError::OutOfRange(s)
            | FsError::InvalidPath(s)
            | FsError::InvalidArgument(s)
            | FsError::NoSpace(s)
            | FsError::Unavailable(s)
            | FsError::Unauthenticated(s)
            | FsError::BlockToken(s)
            | FsError::Io(s) => s.clone(),
            FsError::NotLeader { leader } => leader.clone().unwrap_or_default(),
        }
    }

    /// Rebuilds the variant from its wire kind and detail; `None` for an unknown kind.
    pub fn from_kind(kind: &str, detail: String) -> Option<FsError> {
        Some(match kind {
            "not_found" => FsError::NotFound(detail),
            "already_exists" => FsError::AlreadyExists(detail),
            "not_a_directory" => FsError::NotADirectory(detail),
            "is_a_directory" => FsError::IsADirectory(detail),
            "not_empty" => FsError::NotEmpty(detail),
            "not_permitted" => FsError::NotPermitted(detail),
            "too_many_links" => FsError::TooManyLinks(detail),
            "no_attribute" => FsError::NoAttribute(detail),
            "not_supported" => FsError::NotSupported(detail),
            "read_only" => FsError::ReadOnly(detail),
            "cross_device" => FsError::CrossDevice(detail),
            "too_big" => FsError::TooBig(detail),
            "out_of_range" => FsError::OutOfRange(detail),
            "invalid_path" => FsError::InvalidPath(detail),
            "invalid_argument" => FsError::InvalidArgument(detail),
            "no_space" => FsError::NoSpace(detail),
            "unavailable" => FsError::Unavailable(detail),
            "not_leader" => FsError::NotLeader {
                leader: Some(detail).filter(|d| !d.is_empty()),
            },
            "unauthenticated" => FsError::Unauthenticated(detail),
            "block_token" => FsError::BlockToken(detail),
            "io" => FsError::Io(detail),
            _ => return None,
        })
    }

    /// Whether retrying elsewhere or later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FsError::Unavailable(_) | FsError::NotLeader { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        let all = [
            FsError::NotFound("/a".into()),
            FsError::AlreadyExists("/a".into()),
            FsError::NotADirectory("/a".into()),
            FsError::IsADirectory("/a".into()),
            FsError::NotEmpty("/a".into()),
            FsError::NotPermitted("/a".into()),
            FsError::TooManyLinks("/a".into()),
            FsError::NoAttribute("/a".into()),
            FsError::NotSupported("/a".into()),
            FsError::ReadOnly("/a".into()),
            FsError::CrossDevice("/a".into()),
            FsError::TooBig("/a".into()),
            FsError::OutOfRange("/a".into()),
            FsError::InvalidPath("x".into()),
            FsError::InvalidArgument("x".into()),
            FsError::NoSpace("x".into()),
            FsError::Unavailable("x".into()),
            FsError::NotLeader {
                leader: Some("h:1".into()),
            },
            FsError::NotLeader { leader: None },
            FsError::Unauthenticated("x".into()),
            FsError::BlockToken("x".into()),
            FsError::Io("x".into()),
        ];
        for e in all {
            assert_eq!(FsError::from_kind(e.kind(), e.detail()), Some(e.clone()));
        }
        assert_eq!(FsError::from_kind("nope", String::new()), None);
    }
}
