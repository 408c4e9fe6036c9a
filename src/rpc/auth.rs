//! The cluster token: one shared secret, read once at start from the file named by
//! `[security] token_file` (or `CURVINE_TOKEN_FILE`), sent by every client of our gRPC
//! services as `authorization: Bearer <token>` ([`Attach`]) and required by every
//! server ([`Guard`], compared in constant time). No token file: nothing is sent or
//! required. The token is never logged; its `Debug` shows `<redacted>`.

use crate::config::ClusterConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tracing::{info, warn};

/// The metadata key the token travels in.
pub const HEADER: &str = "authorization";
/// What a refused caller is told to do.
pub const FIX: &str =
    "this cluster requires its token: set [security] token_file or CURVINE_TOKEN_FILE to the \
     file holding the cluster's token, or CURVINE_SECURITY_DIR to the mounted Secret \
     curvine-security (the same Secret every pod mounts)";
/// How often one peer's refusals are logged at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A channel whose requests carry the token (when there is one).
pub type AuthChannel = InterceptedService<Channel, Attach>;

/// The cluster token, kept in memory.
#[derive(Clone)]
pub struct Token {
    secret: Arc<[u8]>,
    header: MetadataValue<Ascii>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads the token from `path` (one trailing newline dropped). `key` names the
    /// setting that named the file, for the error.
    pub fn read(path: &Path, key: &str) -> Result<Token, String> {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the cluster token file {} ({key}): {e}; mount the token Secret \
                 there or point {key} at it",
                path.display()
            )
        })?;
        Token::parse(&text).map_err(|why| {
            format!(
                "the cluster token file {} ({key}) {why}; write the token (printable \
                 characters, no spaces) into it",
                path.display()
            )
        })
    }

    /// The token in `text`, one trailing newline (`\n` or `\r\n`) dropped.
    pub fn parse(text: &[u8]) -> Result<Token, String> {
        let body = text
            .strip_suffix(b"\r\n")
            .or_else(|| text.strip_suffix(b"\n"))
            .unwrap_or(text);
        if body.is_empty() {
            return Err("is empty".to_string());
        }
        if !body.iter().all(|b| b.is_ascii_graphic()) {
            return Err("holds spaces, control or non-ASCII characters".to_string());
        }
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(body);
        let header = MetadataValue::try_from(bearer.as_slice())
            .map_err(|_| "is not a valid header value".to_string())?;
        Ok(Token {
            secret: Arc::from(body),
            header,
        })
    }

    /// The token of `config` (`security.token_file`), `None` when none is configured.
    pub fn from_config(config: &ClusterConfig) -> Result<Option<Token>, String> {
        let file = config.security.token_file.trim();
        if file.is_empty() {
            return Ok(None);
        }
        Token::read(
            Path::new(file),
            "[security] token_file or CURVINE_TOKEN_FILE",
        )
        .map(Some)
    }

    /// The secret itself, for deriving keys from it (never logged).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Whether `presented` (an `authorization` value) is `Bearer <this token>`.
    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        match presented.strip_prefix(b"Bearer ") {
            Some(given) => constant_time_eq(given, &self.secret),
            None => false,
        }
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Logs once, at start, that `role` runs without a token (when `has_token` is false).
pub fn note_open(role: &str, has_token: bool) {
    if !has_token {
        info!(
            role,
            "no cluster token: the cluster is open to every pod that can reach it and block \
             tokens are not checked (set [security] token_file)"
        );
    }
}

/// Client side: adds the token to every request.
#[derive(Debug, Clone, Default)]
pub struct Attach(pub Option<Token>);

impl Interceptor for Attach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(HEADER, token.header.clone());
        }
        Ok(request)
    }
}

/// `channel` with the token on every request.
pub fn attach(channel: Channel, token: &Option<Token>) -> AuthChannel {
    InterceptedService::new(channel, Attach(token.clone()))
}

/// Which peers were warned about lately: a refusal is logged at most once per peer per
/// 10 s, so a misconfigured or hostile peer cannot flood the log.
#[derive(Debug, Clone, Default)]
pub struct PeerWarnings(Arc<Mutex<HashMap<Option<IpAddr>, Instant>>>);

impl PeerWarnings {
    /// Whether a refusal from `peer` is logged now.
    pub fn should_warn(&self, peer: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut warned = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if warned.len() > 1024 {
            warned.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
        }
        match warned.get(&peer) {
            Some(at) if now.duration_since(*at) < WARN_EVERY => false,
            _ => {
                warned.insert(peer, now);
                true
            }
        }
    }
}

/// Server side: refuses requests without the token.
#[derive(Debug, Clone)]
pub struct Guard {
    token: Option<Token>,
    service: &'static str,
    warned: PeerWarnings,
}

impl Guard {
    /// A guard of `service` (named in the log) requiring `token`; none passes all.
    pub fn new(service: &'static str, token: Option<Token>) -> Guard {
        Guard {
            token,
            service,
            warned: PeerWarnings::default(),
        }
    }

    /// Whether a refusal from `peer` is logged now (once per peer per 10 s).
    fn should_warn(&self, peer: Option<IpAddr>) -> bool {
        self.warned.should_warn(peer)
    }
}

impl Interceptor for Guard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let presented = request.metadata().get(HEADER);
        if presented.is_some_and(|v| token.accepts(v.as_bytes())) {
            return Ok(request);
        }
        let peer = request.remote_addr();
        if self.should_warn(peer.map(|a| a.ip())) {
            let why = if presented.is_some() {
                "wrong token"
            } else {
                "no token"
            };
            warn!(
                service = self.service,
                peer = %peer.map(|a| a.to_string()).unwrap_or_else(|| "unknown".into()),
                why,
                "refused a request without the cluster token (at most one line per peer per 10 s)"
            );
        }
        Err(Status::unauthenticated(FIX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_file_reading() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let token = Token::read(&file, "[security] token_file").unwrap();
        assert!(token.accepts(b"Bearer s3cr3t"));
        assert!(!token.accepts(b"Bearer s3cr3t\n"));
        assert!(!token.accepts(b"s3cr3t"));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");

        std::fs::write(&file, "abc\r\n").unwrap();
        assert!(Token::read(&file, "k").unwrap().accepts(b"Bearer abc"));
        // Only one newline goes: a second one is part of the file and refused.
        std::fs::write(&file, "abc\n\n").unwrap();
        assert!(Token::read(&file, "k").is_err());

        std::fs::write(&file, "\n").unwrap();
        let err = Token::read(&file, "[security] token_file").unwrap_err();
        assert!(err.contains("is empty"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("[security] token_file"), "{err}");

        let missing = dir.path().join("nope");
        let err = Token::read(&missing, "[security] token_file").unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn guard_refuses_missing_and_wrong_tokens() {
        let token = Token::parse(b"right").unwrap();
        let mut guard = Guard::new("test", Some(token.clone()));
        let mut with = Attach(Some(token));
        assert!(guard.call(with.call(Request::new(())).unwrap()).is_ok());
        let denied = guard.call(Request::new(())).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::Unauthenticated);
        assert!(denied.message().contains("token_file"));
        let mut wrong = Attach(Some(Token::parse(b"wrong").unwrap()));
        assert!(guard.call(wrong.call(Request::new(())).unwrap()).is_err());
        // No token configured: everything passes, nothing is added.
        assert!(Guard::new("open", None).call(Request::new(())).is_ok());
        let plain = Attach(None).call(Request::new(())).unwrap();
        assert!(plain.metadata().get(HEADER).is_none());
    }

    #[test]
    fn refusals_are_logged_once_per_peer_per_interval() {
        let guard = Guard::new("test", None);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(guard.should_warn(a));
        assert!(!guard.should_warn(a));
        assert!(guard.should_warn(b));
    }
}
