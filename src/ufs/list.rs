//! [`UfsLister`]: one level of a directory, in pages of at most [`PAGE`] entries, with
//! memory bounded by the page whatever the directory holds.
//!
//! On S3 a directory is a key prefix: the listing's common prefixes, whether or not a
//! marker object `dir/` exists; the marker of the listed directory itself is skipped.
//! Entries come as the storage sends them (S3: key order). A local listing has names
//! only, so each entry is stat'ed (a few at a time) for its size and mtime.

use super::entry::UfsEntry;
use super::path::{base_name, dir_path};
use super::store::{Ufs, LOCAL_STAGING_DIR};
use super::UfsError;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;

/// Entries per page (S3's largest page).
pub const PAGE: usize = 1000;
/// Local entries stat'ed at once.
const LOCAL_STATS: usize = 16;

/// A listing in progress; see [`Ufs::lister`].
pub struct UfsLister {
    ufs: Ufs,
    /// The listed directory, relative (`""` = the root).
    dir: String,
    /// Its opendal spelling (`/` or `dir/`), skipped when listed.
    self_path: String,
    /// None once the listing ended.
    inner: Option<opendal::Lister>,
    /// Directory names of this page and the one before, so that a server listing a
    /// prefix both as a prefix and as a marker object shows it once.
    dirs_now: HashSet<String>,
    dirs_before: HashSet<String>,
}

impl UfsLister {
    pub(crate) async fn open(ufs: Ufs, dir: &str) -> Result<UfsLister, UfsError> {
        let self_path = dir_path(dir);
        let inner = ufs
            .op()
            .lister_with(&self_path)
            .limit(PAGE)
            .await
            .map_err(|e| ufs.err("list", dir, e))?;
        Ok(UfsLister {
            ufs,
            dir: dir.to_string(),
            self_path,
            inner: Some(inner),
            dirs_now: HashSet::new(),
            dirs_before: HashSet::new(),
        })
    }

    /// The next entries; an empty page means the listing is complete.
    pub async fn next_page(&mut self) -> Result<Vec<UfsEntry>, UfsError> {
        loop {
            let page = self.fill().await?;
            // A page may come out empty before the end when every local entry vanished.
            if !page.is_empty() || self.inner.is_none() {
                return Ok(page);
            }
        }
    }

    async fn fill(&mut self) -> Result<Vec<UfsEntry>, UfsError> {
        let mut raw = Vec::new();
        while raw.len() < PAGE {
            let Some(inner) = self.inner.as_mut() else {
                break;
            };
            let entry = match inner.try_next().await {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    self.inner = None;
                    break;
                }
                Err(e) => return Err(self.ufs.err("list", &self.dir, e)),
            };
            let path = entry.path();
            let name = base_name(path);
            if path == self.self_path || path == "/" || name.is_empty() {
                continue;
            }
            if self.ufs.is_local() && self.dir.is_empty() && name == LOCAL_STAGING_DIR {
                continue;
            }
            let (path, meta) = entry.into_parts();
            if meta.is_dir() {
                let name = base_name(&path).to_string();
                if self.dirs_before.contains(&name) || !self.dirs_now.insert(name) {
                    continue;
                }
            }
            raw.push((path, meta));
        }
        self.dirs_before = std::mem::take(&mut self.dirs_now);
        if !self.ufs.is_local() {
            return Ok(raw
                .iter()
                .map(|(path, meta)| {
                    if meta.is_dir() {
                        UfsEntry::dir(base_name(path))
                    } else {
                        UfsEntry::from_meta(base_name(path), meta, false)
                    }
                })
                .collect());
        }
        // A local listing gives names only; a stat follows symbolic links too.
        let ufs = &self.ufs;
        let stats = futures::stream::iter(raw.into_iter().map(|(path, _)| async move {
            match ufs.op().stat(&path).await {
                Ok(meta) => Ok(Some(UfsEntry::from_meta(base_name(&path), &meta, true))),
                // Gone since the listing, or a dangling link.
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ufs.err("list", &path, e)),
            }
        }))
        .buffered(LOCAL_STATS)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(stats.into_iter().flatten().collect())
    }
}
