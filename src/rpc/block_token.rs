//! Block tokens: short-lived capabilities for one block. The master issues one with every
//! block it allocates (write) and every block location it returns (read); a worker serves
//! or stores a block's bytes only for a valid token naming that block and mode, so block
//! ids are no longer keys to data.
//!
//! A token is `version, mode, block id, expiry (unix ms)` and an HMAC-SHA256 of those
//! (and of the block's under-storage source, when a read names one, so a read token
//! cannot make a worker fill the block from elsewhere). The HMAC key is derived from the
//! cluster token ([`BlockKey::derive`]): masters and workers share it with nothing new to
//! distribute. Without a cluster token there is no key: the master issues empty tokens
//! and workers check nothing (the cluster is open). Tokens are never logged.

use super::auth::{PeerWarnings, Token};
use super::pb::worker::UfsSource;
use crate::fs_error::FsError;
use bytes::Bytes;
use ring::hmac;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// What the domain separation of the derived key says (a new version, a new key).
const KEY_LABEL: &[u8] = b"curvine block key v1";
/// The encoding version, the token's first byte.
const VERSION: u8 = 1;
/// Version, mode, block id, expiry.
const HEADER: usize = 1 + 1 + 8 + 8;
/// A SHA-256 tag.
const MAC: usize = 32;
/// A token's length on the wire.
pub const TOKEN_LEN: usize = HEADER + MAC;

/// What a token lets its holder do with the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the block's bytes (ReadBlock, ReadRange, LoadBlock).
    Read,
    /// Store the block (WriteBlock).
    Write,
}

impl Mode {
    fn byte(self) -> u8 {
        match self {
            Mode::Read => 1,
            Mode::Write => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Write => "write",
        }
    }
}

/// Why a worker refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request carried no token.
    Missing,
    /// The bytes are not a token (wrong length or version).
    Malformed,
    /// The MAC does not match: not issued by this cluster's masters, altered, or for
    /// another under-storage source.
    Forged,
    /// A valid token for another block.
    WrongBlock {
        /// The block the token names.
        names: u64,
    },
    /// A valid token for the block in the other mode (a read token on a write).
    WrongMode {
        /// The mode the token grants.
        grants: Mode,
    },
    /// The token's lifetime is over.
    Expired {
        /// How long ago, in milliseconds.
        ago_ms: u64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("no block token"),
            Refusal::Malformed => f.write_str("the block token is malformed"),
            Refusal::Forged => {
                f.write_str("the block token was not issued by this cluster's masters")
            }
            Refusal::WrongBlock { names } => {
                write!(f, "the block token is for block {names}")
            }
            Refusal::WrongMode { grants } => {
                write!(f, "the block token only grants {}", grants.name())
            }
            Refusal::Expired { ago_ms } => {
                write!(f, "the block token expired {} s ago", ago_ms.div_ceil(1000))
            }
        }
    }
}

impl Refusal {
    /// The short name logged for the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Forged => "forged",
            Refusal::WrongBlock { .. } => "wrong block",
            Refusal::WrongMode { .. } => "wrong mode",
            Refusal::Expired { .. } => "expired",
        }
    }
}

/// The key tokens are signed with, derived from the cluster token.
pub struct BlockKey(hmac::Key);

impl std::fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockKey(<redacted>)")
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl BlockKey {
    /// The block key of a cluster token: HMAC-SHA256(token, "curvine block key v1").
    pub fn derive(token: &Token) -> BlockKey {
        let root = hmac::Key::new(hmac::HMAC_SHA256, token.secret());
        let derived = hmac::sign(&root, KEY_LABEL);
        BlockKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// A token for `block` in `mode`, valid until `expires_ms`; `source` is the
    /// under-storage source a read names (bound into the MAC).
    pub fn mint(
        &self,
        block: u64,
        mode: Mode,
        expires_ms: u64,
        source: Option<&UfsSource>,
    ) -> Bytes {
        let mut header = [0u8; HEADER];
        header[0] = VERSION;
        header[1] = mode.byte();
        header[2..10].copy_from_slice(&block.to_be_bytes());
        header[10..18].copy_from_slice(&expires_ms.to_be_bytes());
        let tag = hmac::sign(&self.0, &signed_bytes(&header, source));
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.extend_from_slice(&header);
        token.extend_from_slice(tag.as_ref());
        Bytes::from(token)
    }

    /// Whether `presented` lets its holder use `block` in `mode` at `now_ms`, for a
    /// request naming `source`. The MAC is checked first (in constant time), so the
    /// other answers describe genuine tokens only.
    pub fn check(
        &self,
        presented: &[u8],
        block: u64,
        mode: Mode,
        source: Option<&UfsSource>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if presented.is_empty() {
            return Err(Refusal::Missing);
        }
        if presented.len() != TOKEN_LEN || presented[0] != VERSION {
            return Err(Refusal::Malformed);
        }
        let (header, tag) = presented.split_at(HEADER);
        hmac::verify(&self.0, &signed_bytes(header, source), tag).map_err(|_| Refusal::Forged)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&header[2..10]);
        let names = u64::from_be_bytes(word);
        word.copy_from_slice(&header[10..18]);
        let expires_ms = u64::from_be_bytes(word);
        if names != block {
            return Err(Refusal::WrongBlock { names });
        }
        if header[1] != mode.byte() {
            let grants = if header[1] == Mode::Read.byte() {
                Mode::Read
            } else {
                Mode::Write
            };
            return Err(Refusal::WrongMode { grants });
        }
        if now_ms >= expires_ms {
            return Err(Refusal::Expired {
                ago_ms: now_ms - expires_ms,
            });
        }
        Ok(())
    }
}

/// The bytes the MAC covers: the header, then the source a read names (length-prefixed
/// text fields, so no two sources encode alike).
fn signed_bytes(header: &[u8], source: Option<&UfsSource>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 64);
    out.extend_from_slice(header);
    match source {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            for text in [&s.mount, &s.path, &s.etag] {
                out.extend_from_slice(&(text.len() as u64).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            for n in [s.offset, s.len, s.file_len] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
    out
}

/// The master's side: issues tokens valid for `lifetime`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: Option<Arc<BlockKey>>,
    lifetime: Duration,
}

impl Issuer {
    /// An issuer with the key of `token` (none: an open cluster, empty tokens).
    pub fn new(token: Option<&Token>, lifetime: Duration) -> Issuer {
        Issuer {
            key: token.map(|t| Arc::new(BlockKey::derive(t))),
            lifetime,
        }
    }

    fn mint(&self, block: u64, mode: Mode, source: Option<&UfsSource>) -> Bytes {
        match &self.key {
            Some(key) => {
                let expires = now_ms().saturating_add(self.lifetime.as_millis() as u64);
                key.mint(block, mode, expires, source)
            }
            None => Bytes::new(),
        }
    }

    /// A read token for `block` (with the under-storage `source` its location names).
    pub fn read(&self, block: u64, source: Option<&UfsSource>) -> Bytes {
        self.mint(block, Mode::Read, source)
    }

    /// A write token for `block`.
    pub fn write(&self, block: u64) -> Bytes {
        self.mint(block, Mode::Write, None)
    }
}

/// What a refused request is told to do.
const FIX: &str = "block tokens come from the master with each block's location or \
                   allocation; open the file again through the cluster";

/// The worker's side: requires a valid token on every request for a block's bytes,
/// and logs refusals at most once per peer per 10 s. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checker {
    key: Option<Arc<BlockKey>>,
    warned: PeerWarnings,
}

impl Checker {
    /// A checker with the key of `token` (none: an open cluster, nothing checked).
    pub fn new(token: Option<&Token>) -> Checker {
        Checker {
            key: token.map(|t| Arc::new(BlockKey::derive(t))),
            warned: PeerWarnings::default(),
        }
    }

    /// Whether a request from `peer` (logged on refusal) may use `block` in `mode`.
    pub fn check(
        &self,
        presented: &[u8],
        block: u64,
        mode: Mode,
        source: Option<&UfsSource>,
        peer: Option<SocketAddr>,
    ) -> Result<(), FsError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let refusal = match key.check(presented, block, mode, source, now_ms()) {
            Ok(()) => return Ok(()),
            Err(r) => r,
        };
        if self.warned.should_warn(peer.map(|a| a.ip())) {
            warn!(
                peer = %peer.map(|a| a.to_string()).unwrap_or_else(|| "unknown".into()),
                block,
                mode = mode.name(),
                why = refusal.reason(),
                "refused a block request without a valid block token (at most one line per \
                 peer per 10 s)"
            );
        }
        Err(FsError::BlockToken(format!(
            "{} of block {block}: {refusal}; {FIX}",
            mode.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BlockKey {
        BlockKey::derive(&Token::parse(b"cluster-secret").unwrap())
    }

    fn source() -> UfsSource {
        UfsSource {
            mount: "/ds".into(),
            path: "a/b.bin".into(),
            etag: "\"e1\"".into(),
            offset: 0,
            len: 10,
            file_len: 10,
        }
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_valid_token_passes() {
        let k = key();
        let t = k.mint(7, Mode::Read, NOW + 1000, None);
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(k.check(&t, 7, Mode::Read, None, NOW), Ok(()));
        let w = k.mint(7, Mode::Write, NOW + 1000, None);
        assert_eq!(k.check(&w, 7, Mode::Write, None, NOW + 999), Ok(()));
        let s = source();
        let t = k.mint(7, Mode::Read, NOW + 1000, Some(&s));
        assert_eq!(k.check(&t, 7, Mode::Read, Some(&s), NOW), Ok(()));
    }

    #[test]
    fn another_block_or_mode_is_refused() {
        let k = key();
        let t = k.mint(7, Mode::Read, NOW + 1000, None);
        assert_eq!(
            k.check(&t, 8, Mode::Read, None, NOW),
            Err(Refusal::WrongBlock { names: 7 })
        );
        assert_eq!(
            k.check(&t, 7, Mode::Write, None, NOW),
            Err(Refusal::WrongMode { grants: Mode::Read })
        );
        let w = k.mint(7, Mode::Write, NOW + 1000, None);
        assert_eq!(
            k.check(&w, 7, Mode::Read, None, NOW),
            Err(Refusal::WrongMode {
                grants: Mode::Write
            })
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let k = key();
        let t = k.mint(7, Mode::Read, NOW, None);
        assert_eq!(
            k.check(&t, 7, Mode::Read, None, NOW),
            Err(Refusal::Expired { ago_ms: 0 })
        );
        let e = k.check(&t, 7, Mode::Read, None, NOW + 2500).unwrap_err();
        assert_eq!(e, Refusal::Expired { ago_ms: 2500 });
        assert!(e.to_string().contains("expired 3 s ago"), "{e}");
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let k = key();
        let t = k.mint(7, Mode::Read, NOW + 1000, None);
        // Every single-byte change: the header (id, mode, expiry) or the MAC.
        for i in 1..t.len() {
            let mut bad = t.to_vec();
            bad[i] ^= 0x01;
            assert_eq!(
                k.check(&bad, 7, Mode::Read, None, NOW),
                Err(Refusal::Forged),
                "byte {i}"
            );
        }
        // Moving the expiry or the block id without the key.
        let mut later = t.to_vec();
        later[10..18].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            k.check(&later, 7, Mode::Read, None, NOW),
            Err(Refusal::Forged)
        );
        // Another cluster's key.
        let other = BlockKey::derive(&Token::parse(b"other-secret").unwrap());
        let theirs = other.mint(7, Mode::Read, NOW + 1000, None);
        assert_eq!(
            k.check(&theirs, 7, Mode::Read, None, NOW),
            Err(Refusal::Forged)
        );
        // The block key is not the cluster token itself.
        let plain = hmac::Key::new(hmac::HMAC_SHA256, b"cluster-secret");
        let mut naive = t[..HEADER].to_vec();
        naive.extend_from_slice(hmac::sign(&plain, &signed_bytes(&t[..HEADER], None)).as_ref());
        assert_eq!(
            k.check(&naive, 7, Mode::Read, None, NOW),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn a_read_token_is_bound_to_its_source() {
        let k = key();
        let s = source();
        let t = k.mint(7, Mode::Read, NOW + 1000, Some(&s));
        assert_eq!(k.check(&t, 7, Mode::Read, None, NOW), Err(Refusal::Forged));
        let mut elsewhere = s.clone();
        elsewhere.path = "a/other.bin".into();
        assert_eq!(
            k.check(&t, 7, Mode::Read, Some(&elsewhere), NOW),
            Err(Refusal::Forged)
        );
        let plain = k.mint(7, Mode::Read, NOW + 1000, None);
        assert_eq!(
            k.check(&plain, 7, Mode::Read, Some(&s), NOW),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn missing_truncated_and_malformed_tokens_are_refused() {
        let k = key();
        let t = k.mint(7, Mode::Read, NOW + 1000, None);
        assert_eq!(
            k.check(&[], 7, Mode::Read, None, NOW),
            Err(Refusal::Missing)
        );
        for len in [1, HEADER, TOKEN_LEN - 1] {
            assert_eq!(
                k.check(&t[..len], 7, Mode::Read, None, NOW),
                Err(Refusal::Malformed),
                "length {len}"
            );
        }
        let mut longer = t.to_vec();
        longer.push(0);
        assert_eq!(
            k.check(&longer, 7, Mode::Read, None, NOW),
            Err(Refusal::Malformed)
        );
        let mut v2 = t.to_vec();
        v2[0] = 2;
        assert_eq!(
            k.check(&v2, 7, Mode::Read, None, NOW),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn issuer_and_checker_agree_and_an_open_cluster_checks_nothing() {
        let token = Token::parse(b"cluster-secret").unwrap();
        let issuer = Issuer::new(Some(&token), Duration::from_secs(60));
        let checker = Checker::new(Some(&token));
        let s = source();
        let read = issuer.read(9, Some(&s));
        assert!(checker.check(&read, 9, Mode::Read, Some(&s), None).is_ok());
        let write = issuer.write(9);
        assert!(checker.check(&write, 9, Mode::Write, None, None).is_ok());
        let e = checker
            .check(&read, 9, Mode::Write, Some(&s), None)
            .unwrap_err();
        assert!(matches!(e, FsError::BlockToken(_)), "{e}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("block 9") && text.contains("only grants read"),
            "{text}"
        );
        assert!(!text.contains("cluster-secret"), "{text}");
        assert!(format!("{checker:?} {issuer:?}").contains("redacted"));

        let open = Issuer::new(None, Duration::from_secs(60));
        assert!(open.read(9, None).is_empty() && open.write(9).is_empty());
        assert!(Checker::new(None)
            .check(&[], 9, Mode::Write, None, None)
            .is_ok());
    }
}
