//! [`UfsEntry`], one file or directory as the storage reports it, made from opendal's
//! metadata: S3 etags lose their quotes; a local file, which has no etag, gets one made
//! of its size and modification time so that a change is noticed all the same.

use std::time::{SystemTime, UNIX_EPOCH};

/// One entry of a listing or a stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfsEntry {
    /// The last path component, without `/` (empty for the mount's root).
    pub name: String,
    /// A directory (an S3 key prefix, with or without a marker object).
    pub is_dir: bool,
    /// The size in bytes (0 for directories).
    pub size: u64,
    /// The modification time in ms since the epoch (0 when unknown, e.g. S3 prefixes).
    pub mtime_ms: i64,
    /// The storage's version tag of a file: the S3 ETag without quotes, or
    /// `<size hex>-<mtime ns hex>` for a local file; `""` if unknown.
    pub etag: String,
}

impl UfsEntry {
    /// A directory entry with nothing known but its name.
    pub(crate) fn dir(name: &str) -> UfsEntry {
        UfsEntry {
            name: name.to_string(),
            is_dir: true,
            size: 0,
            mtime_ms: 0,
            etag: String::new(),
        }
    }

    /// The entry named `name` with opendal's `meta`; `local` makes the etag from size
    /// and mtime.
    pub(crate) fn from_meta(name: &str, meta: &opendal::Metadata, local: bool) -> UfsEntry {
        let is_dir = meta.is_dir();
        let modified = meta.last_modified().map(SystemTime::from);
        let size = if is_dir { 0 } else { meta.content_length() };
        let etag = match (is_dir, local, meta.etag(), modified) {
            (true, ..) => String::new(),
            (false, false, Some(tag), _) => normalize_etag(tag),
            (false, true, _, Some(t)) => format!("{size:x}-{:x}", epoch_nanos(t)),
            _ => String::new(),
        };
        UfsEntry {
            name: name.to_string(),
            is_dir,
            size,
            mtime_ms: modified.map(epoch_millis).unwrap_or(0),
            etag,
        }
    }
}

/// An ETag as S3 sends it (`"abc"`, `W/"abc"`) without the quotes and weak marker.
pub(crate) fn normalize_etag(tag: &str) -> String {
    tag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn epoch_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn epoch_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendal::{EntryMode, Metadata};

    #[test]
    fn s3_etags_lose_quotes() {
        assert_eq!(normalize_etag("\"abc-2\""), "abc-2");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        let meta = Metadata::new(EntryMode::FILE)
            .with_content_length(5)
            .with_etag("\"e1\"".to_string());
        let e = UfsEntry::from_meta("f", &meta, false);
        assert_eq!(
            e,
            UfsEntry {
                name: "f".into(),
                is_dir: false,
                size: 5,
                mtime_ms: 0,
                etag: "e1".into()
            }
        );
    }

    #[test]
    fn local_files_get_a_made_etag_that_moves_with_mtime() {
        let t1 = opendal::raw::Timestamp::from_millisecond(1_700_000_000_123).unwrap();
        let t2 = opendal::raw::Timestamp::from_millisecond(1_700_000_000_124).unwrap();
        let m1 = Metadata::new(EntryMode::FILE)
            .with_content_length(16)
            .with_last_modified(t1);
        let m2 = m1.clone().with_last_modified(t2);
        let e1 = UfsEntry::from_meta("f", &m1, true);
        assert_eq!(e1.mtime_ms, 1_700_000_000_123);
        assert!(e1.etag.starts_with("10-"), "{}", e1.etag);
        assert_ne!(e1.etag, UfsEntry::from_meta("f", &m2, true).etag);
        let d = UfsEntry::from_meta("d", &Metadata::new(EntryMode::DIR), true);
        assert!(d.is_dir && d.etag.is_empty() && d.size == 0);
    }
}
