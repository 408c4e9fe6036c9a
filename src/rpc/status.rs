//! File system errors to `tonic::Status` and back, in one place. The variant travels in
//! the `x-curvine-error` metadata and its text in the status message, so the client gets
//! the same [`FsError`] the master returned; a leader hint rides along as the detail of
//! `NotLeader`.

use crate::fs_error::FsError;
use tonic::{Code, Status};

const KIND_HEADER: &str = "x-curvine-error";
/// How tonic begins the message of a status it made from an HTTP/2 error.
const H2_ERROR: &str = "h2 protocol error";

/// The status a server returns for an error.
pub fn to_status(err: FsError) -> Status {
    let code = match &err {
        FsError::NotFound(_) => Code::NotFound,
        FsError::AlreadyExists(_) => Code::AlreadyExists,
        FsError::NotPermitted(_) => Code::PermissionDenied,
        FsError::TooManyLinks(_) | FsError::TooBig(_) => Code::ResourceExhausted,
        FsError::NoAttribute(_) => Code::NotFound,
        FsError::NotSupported(_) => Code::Unimplemented,
        FsError::ReadOnly(_) | FsError::CrossDevice(_) => Code::FailedPrecondition,
        FsError::OutOfRange(_) => Code::OutOfRange,
        FsError::NotADirectory(_) | FsError::IsADirectory(_) | FsError::NotEmpty(_) => {
            Code::FailedPrecondition
        }
        FsError::InvalidPath(_) | FsError::InvalidArgument(_) => Code::InvalidArgument,
        FsError::NoSpace(_) => Code::ResourceExhausted,
        FsError::Unavailable(_) | FsError::NotLeader { .. } => Code::Unavailable,
        FsError::Unauthenticated(_) => Code::Unauthenticated,
        FsError::BlockToken(_) => Code::PermissionDenied,
        FsError::Io(_) => Code::Internal,
    };
    let mut status = Status::new(code, err.detail());
    if let Ok(v) = err.kind().parse() {
        status.metadata_mut().insert(KIND_HEADER, v);
    }
    status
}

/// The error a client sees for a status: the server's own variant when it sent one;
/// otherwise transport failures and timeouts are `Unavailable`, so the call is retried:
/// a connection that ends before the reply (Unknown), a deadline (Cancelled), an HTTP/2
/// stream or connection error (tonic's "h2 protocol error", which it codes Internal). The
/// request may have been applied; a call that changes the namespace is retried with its
/// call id, and the master answers that repeat with the first result.
pub fn from_status(status: &Status) -> FsError {
    if let Some(kind) = status
        .metadata()
        .get(KIND_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(e) = FsError::from_kind(kind, status.message().to_string()) {
            return e;
        }
    }
    match status.code() {
        Code::NotFound => FsError::NotFound(status.message().to_string()),
        Code::AlreadyExists => FsError::AlreadyExists(status.message().to_string()),
        Code::InvalidArgument => FsError::InvalidArgument(status.message().to_string()),
        Code::ResourceExhausted => FsError::NoSpace(status.message().to_string()),
        Code::Unauthenticated => FsError::Unauthenticated(status.message().to_string()),
        Code::Internal if status.message().starts_with(H2_ERROR) => {
            FsError::Unavailable(describe(status))
        }
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Unknown
        | Code::Aborted => FsError::Unavailable(describe(status)),
        _ => FsError::Io(describe(status)),
    }
}

fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(status);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_wire() {
        for e in [
            FsError::NotFound("/a".into()),
            FsError::NotEmpty("/d".into()),
            FsError::NoSpace("full".into()),
            FsError::NotLeader {
                leader: Some("m1:8996".into()),
            },
        ] {
            assert_eq!(from_status(&to_status(e.clone())), e);
        }
        assert!(matches!(
            from_status(&Status::unavailable("conn refused")),
            FsError::Unavailable(_)
        ));
        assert!(matches!(
            from_status(&Status::deadline_exceeded("slow")),
            FsError::Unavailable(_)
        ));
        // A lost connection or an HTTP/2 reset mid-call (no kind header: not our server's
        // answer) is retried; an Internal status that is no transport failure is not.
        for lost in [
            Status::unknown("transport error: connection closed"),
            Status::cancelled("Timeout expired"),
            Status::internal("h2 protocol error: stream error received: unexpected internal error"),
        ] {
            assert!(from_status(&lost).is_retryable(), "{lost:?}");
        }
        assert!(
            !from_status(&Status::internal("failed to decode Protobuf message")).is_retryable()
        );
        let denied = from_status(&Status::unauthenticated("set the token"));
        assert_eq!(denied, FsError::Unauthenticated("set the token".into()));
        assert!(!denied.is_retryable());
    }
}
