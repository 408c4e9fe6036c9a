//! [`UfsWriter`]: writes one whole object. On S3 the data goes up as a multipart upload
//! (8 MiB parts, a few at once) that only becomes an object on `finish`; a local file is
//! staged and renamed into place on `finish`. `abort`, or dropping the writer unfinished,
//! leaves no object behind (the drop aborts in the background).

use super::entry::UfsEntry;
use super::store::Ufs;
use super::UfsError;
use bytes::Bytes;

/// A write in progress; see [`Ufs::writer`].
pub struct UfsWriter {
    ufs: Ufs,
    path: String,
    /// None once finished or aborted.
    inner: Option<opendal::Writer>,
}

impl UfsWriter {
    pub(crate) fn new(ufs: Ufs, path: &str, inner: opendal::Writer) -> UfsWriter {
        UfsWriter {
            ufs,
            path: path.to_string(),
            inner: Some(inner),
        }
    }

    fn closed(&self) -> UfsError {
        UfsError::Other(format!(
            "{}: the writer of {} is already closed",
            self.ufs.mount(),
            self.path
        ))
    }

    /// Appends `data`.
    pub async fn write(&mut self, data: Bytes) -> Result<(), UfsError> {
        let Some(w) = self.inner.as_mut() else {
            return Err(self.closed());
        };
        let result = w.write(data).await;
        result.map_err(|e| self.ufs.err("write", &self.path, e))
    }

    /// Completes the object and returns it as stored (size, mtime, etag).
    pub async fn finish(mut self) -> Result<UfsEntry, UfsError> {
        let Some(mut w) = self.inner.take() else {
            return Err(self.closed());
        };
        if let Err(e) = w.close().await {
            // Best effort: a failed completion must not leave parts behind.
            let _ = w.abort().await;
            return Err(self.ufs.err("write", &self.path, e));
        }
        self.ufs.stat_file("write", &self.path).await
    }

    /// Abandons the write: no object appears, uploaded parts are discarded.
    pub async fn abort(mut self) -> Result<(), UfsError> {
        match self.inner.take() {
            Some(mut w) => w
                .abort()
                .await
                .map_err(|e| self.ufs.err("abort write", &self.path, e)),
            None => Ok(()),
        }
    }
}

impl Drop for UfsWriter {
    fn drop(&mut self) {
        if let Some(mut w) = self.inner.take() {
            // Outside a runtime there is nothing to abort with; S3 keeps the parts of an
            // unfinished upload (never an object) until the bucket's lifecycle rules.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = w.abort().await;
                });
            }
        }
    }
}
