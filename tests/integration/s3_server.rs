//! A real S3 server for tests: s3s-fs (it checks SigV4 signatures), started on 127.0.0.1
//! with a free port, a temporary root (each top-level directory is a bucket) and the
//! given keys; stopped, by its PID, when the handle drops.
//!
//! The binary comes from `S3S_FS`, `target/tools/bin/s3s-fs` (scripts/deps.sh installs
//! it there) or PATH; a test that needs it fails when it is missing.

use curvine_fluid::ufs::{Ufs, UfsSpec};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the server may take to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The s3s-fs binary, or a failed test saying how to get it.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("S3S_FS") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "S3S_FS={} is not a file", path.display());
        return path;
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/s3s-fs");
    if tools.is_file() {
        return tools;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "s3s-fs is missing: run scripts/deps.sh (it installs s3s-fs 0.14.1 into target/tools/bin), put it on PATH, or set S3S_FS"
        )
    })
}

pub use crate::ports::free_port;

/// A running s3s-fs.
pub struct S3Server {
    child: Child,
    /// Holds the root (`data/`) and the server's log (`log`).
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The access key the server accepts.
    pub access: String,
    /// The secret key the server accepts.
    pub secret: String,
}

impl S3Server {
    /// Starts s3s-fs with these keys and waits until it accepts connections.
    pub fn start(access: &str, secret: &str) -> S3Server {
        let binary = s3s_fs_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        std::fs::create_dir(&root).expect("create the server's root");
        // The port may be taken between free_port and the bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("log")).expect("create the log");
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", access, "--secret-key", secret])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let up = crate::harness::poll_until(START_TIMEOUT, || {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Some(true);
                }
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => Some(false),
                    Ok(None) => None,
                }
            });
            if up == Some(true) {
                return S3Server {
                    child,
                    dir,
                    endpoint: format!("http://127.0.0.1:{port}"),
                    access: access.to_string(),
                    secret: secret.to_string(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        panic!("s3s-fs did not start listening; its log:\n{log}");
    }

    /// The directory that holds the buckets.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates bucket `name` (a top-level directory of the root).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root().join(name)).expect("create bucket");
    }

    /// The Fluid options that reach this server, with the keys given inline.
    pub fn options(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("endpoint_url".to_string(), self.endpoint.clone()),
            ("access".to_string(), self.access.clone()),
            ("secret".to_string(), self.secret.clone()),
        ])
    }

    /// The spec of mount `s3://<bucket_and_prefix>` on this server.
    pub fn spec(&self, bucket_and_prefix: &str) -> UfsSpec {
        let (spec, warnings) = UfsSpec::from_fluid(
            &format!("s3://{bucket_and_prefix}"),
            &self.options(),
            &BTreeMap::new(),
        )
        .expect("spec");
        assert!(warnings.is_empty(), "{warnings:?}");
        spec
    }

    /// A connection to mount `s3://<bucket_and_prefix>`.
    pub fn ufs(&self, bucket_and_prefix: &str) -> Ufs {
        Ufs::open(&self.spec(bucket_and_prefix)).expect("open")
    }

    /// Puts object `key` of `bucket` with `data` (a PUT through the ufs layer).
    pub async fn put_object(&self, bucket: &str, key: &str, data: &[u8]) {
        let mut w = self.ufs(bucket).writer(key).await.expect("writer");
        w.write(bytes::Bytes::copy_from_slice(data))
            .await
            .expect("write");
        w.finish().await.expect("finish");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
