//! Shared helpers: the Fluid fixtures, running the binary with a clean environment,
//! waiting for a condition with a deadline, and reading values out of rendered TOML.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How often the waits below check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Checks `check` every [`POLL_INTERVAL`] until it returns a value, for at most
/// `timeout`; `None` when it never did. The check runs at least once.
pub fn poll_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Checks `check` until it holds, for at most `timeout`; whether it held in time.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll_until(timeout, || check().then_some(())).is_some()
}

/// [`poll_until`] for async checks: sleeps on the runtime between them.
pub async fn poll_until_async<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls the async `check` until it holds, failing the test after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = poll_until_async(timeout, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await;
    assert!(
        held.is_some(),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// The shared Fluid fixtures (`../shared/fluid-fixtures`, or `CURVINE_FLUID_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("CURVINE_FLUID_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fluid-fixtures"));
    assert!(
        dir.join("cache").is_dir() && dir.join("thin").is_dir(),
        "the Fluid fixtures are missing at {}: check out shared/ beside the repository or set CURVINE_FLUID_FIXTURES",
        dir.display()
    );
    dir
}

/// The `KEY=VALUE` lines of an env fixture (comments and blank lines skipped).
pub fn read_env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One pod of a fixture: its environment and its config file.
pub struct Pod {
    /// The environment from the `.env` file, plus overrides.
    pub env: Vec<(String, String)>,
    /// A scratch `CURVINE_HOME`.
    pub home: tempfile::TempDir,
}

impl Pod {
    /// A pod of fixture `kind/name` (e.g. `cache`, `c01-emptydir-1m1w`) with the env file
    /// suffix (`""`, `".worker"`, `".client"`). `CURVINE_HOME` is a fresh temp dir;
    /// `CURVINE_DATA_DIR` stays at the image's `/app/curvine/data`.
    pub fn new(kind: &str, name: &str, env_suffix: &str) -> Pod {
        let dir = fixtures_dir().join(kind);
        let mut env = read_env_file(&dir.join(format!("{name}{env_suffix}.env")));
        let home = tempfile::tempdir().expect("tempdir");
        env.retain(|(k, _)| k != "CURVINE_HOME" && k != "FLUID_RUNTIME_CONFIG_PATH");
        env.push(("CURVINE_HOME".into(), home.path().display().to_string()));
        env.push(("CURVINE_DATA_DIR".into(), "/app/curvine/data".into()));
        env.push((
            "FLUID_RUNTIME_CONFIG_PATH".into(),
            dir.join(format!("{name}.json")).display().to_string(),
        ));
        Pod { env, home }
    }

    /// A pod with exactly this environment (its scratch directory holds only logs).
    pub fn with_env(env: Vec<(String, String)>) -> Pod {
        Pod {
            env,
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Adds or replaces a variable.
    pub fn set(mut self, key: &str, value: &str) -> Pod {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Where the binary writes the config.
    pub fn config_file(&self) -> PathBuf {
        self.home.path().join("conf/curvine-cluster.toml")
    }

    /// Runs the binary with exactly this environment.
    pub fn run(&self, args: &[&str]) -> Output {
        run_binary(args, &self.env)
    }

    /// Starts the binary with exactly this environment, stdout and stderr to `log`; the
    /// process is killed when the guard is dropped (a failing test leaves nothing behind).
    pub fn spawn(&self, args: &[&str], log: &Path) -> KillOnDrop {
        let out = std::fs::File::create(log).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .map(KillOnDrop)
            .expect("run curvine-fluid")
    }

    /// Runs the FUSE client role until it waits for the (absent) masters, then stops it
    /// with SIGTERM; returns its exit status and its output.
    pub fn run_client(&self, args: &[&str]) -> (std::process::ExitStatus, String) {
        let log = self
            .home
            .path()
            .join(format!("client-{}.log", std::process::id()));
        let mut child = self.spawn(args, &log);
        // Started (Some(None)) or exited early (Some(Some(status))).
        let started = poll_until(Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("looking up the mounted directory") {
                return Some(None);
            }
            child.0.try_wait().expect("wait").map(Some)
        });
        match started {
            Some(None) => {}
            Some(Some(status)) => {
                return (status, std::fs::read_to_string(&log).unwrap_or_default())
            }
            None => panic!(
                "client did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        let status = crate::cli_cluster::terminate(&mut child.0);
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Runs `render` and parses stdout, failing the test on a non-zero exit.
    pub fn render(&self) -> toml_edit::DocumentMut {
        let out = self.run(&["render"]);
        assert!(
            out.status.success(),
            "render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.parse()
            .unwrap_or_else(|e| panic!("rendered TOML does not parse: {e}\n{text}"))
    }
}

/// A child process killed on drop if still running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs the built binary with a cleared environment plus `env`. A run that does not
/// finish within a minute is killed and fails the test (a role that should have stopped
/// must never hang the suite).
pub fn run_binary(args: &[&str], env: &[(String, String)]) -> Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run curvine-fluid");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let Some(status) = poll_until(Duration::from_secs(60), || child.try_wait().expect("wait"))
    else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("curvine-fluid {args:?} did not finish within 60 s");
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The item at a dotted path (`journal.journal_addrs`), failing the test when absent.
pub fn item<'d>(doc: &'d toml_edit::DocumentMut, path: &str) -> &'d toml_edit::Item {
    let mut cur = doc.as_item();
    for part in path.split('.') {
        cur = cur
            .get(part)
            .unwrap_or_else(|| panic!("{path} is missing in\n{doc}"));
    }
    cur
}

/// A string at a dotted path.
pub fn str_at(doc: &toml_edit::DocumentMut, path: &str) -> String {
    item(doc, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in\n{doc}"))
        .to_string()
}

/// An integer at a dotted path.
pub fn int_at(doc: &toml_edit::DocumentMut, path: &str) -> i64 {
    item(doc, path)
        .as_integer()
        .unwrap_or_else(|| panic!("{path} is not an integer in\n{doc}"))
}

/// A boolean at a dotted path.
pub fn bool_at(doc: &toml_edit::DocumentMut, path: &str) -> bool {
    item(doc, path)
        .as_bool()
        .unwrap_or_else(|| panic!("{path} is not a boolean in\n{doc}"))
}

/// A float at a dotted path.
pub fn float_at(doc: &toml_edit::DocumentMut, path: &str) -> f64 {
    item(doc, path)
        .as_float()
        .unwrap_or_else(|| panic!("{path} is not a float in\n{doc}"))
}

/// Whether a dotted path is present.
pub fn has(doc: &toml_edit::DocumentMut, path: &str) -> bool {
    let mut cur = doc.as_item();
    for part in path.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

/// A string array at a dotted path.
pub fn strings_at(doc: &toml_edit::DocumentMut, path: &str) -> Vec<String> {
    item(doc, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path} is not an array in\n{doc}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

/// `(id, hostname, port)` of `journal.journal_addrs`, or `(0, hostname, port)` of
/// `client.master_addrs`.
pub fn addrs_at(doc: &toml_edit::DocumentMut, path: &str) -> Vec<(i64, String, i64)> {
    let arr = item(doc, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path} is not an array"));
    arr.iter()
        .map(|v| {
            let t = v.as_inline_table().expect("inline table");
            (
                t.get("id").and_then(|v| v.as_integer()).unwrap_or(0),
                t.get("hostname")
                    .and_then(|v| v.as_str())
                    .expect("hostname")
                    .to_string(),
                t.get("port").and_then(|v| v.as_integer()).expect("port"),
            )
        })
        .collect()
}

/// Asserts an invalid run: exit 2, exactly one line on stderr starting with `error: `
/// and containing `needle`, nothing written under the pod's home.
pub fn assert_rejected(out: &Output, needle: &str, home: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not contain {needle:?}",
        lines[0]
    );
    let written: Vec<_> = walk(home);
    assert!(written.is_empty(), "files were written: {written:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
