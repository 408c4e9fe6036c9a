//! Under storage: the S3 buckets (any S3-compatible endpoint, path or virtual-host
//! style) and local directories that a Fluid Dataset mounts and the cluster caches
//! read-through, reached through opendal.
//!
//! - `spec`: [`UfsSpec`], what backs a mount, as the mount table keeps it (secrets masked
//!   in every human-readable form); `fluid`: [`UfsSpec::from_fluid`], Fluid's
//!   `mountPoint`/`options`/`encryptOptions` into a spec, with warnings.
//! - `store`: [`Ufs`], a connection to one mount's storage (probe, stat, ranged reads,
//!   deletes, directories, copy); `list`: [`UfsLister`], paged listings; `write`:
//!   [`UfsWriter`], multipart writes; `entry`: [`UfsEntry`].
//! - `path`: the relative paths every call takes; `error`: [`UfsError`] and the mapping
//!   of opendal's errors to it.

mod entry;
mod error;
mod fluid;
mod list;
mod path;
mod spec;
mod store;
mod write;

pub use entry::UfsEntry;
pub use error::UfsError;
pub use fluid::{parse_sync_interval, DEFAULT_REGION};
pub use list::{UfsLister, PAGE};
pub use spec::{SecretSource, UfsKind, UfsSpec, MASK};
pub use store::Ufs;
pub use write::UfsWriter;
