//! Logging setup: `tracing` events, one line each, to stdout for the roles (what
//! `kubectl logs` shows) or to stderr for commands whose stdout is their result.

use crate::cli::LogFormat;
use crate::env::{self, EnvSnapshot};
use tracing_subscriber::EnvFilter;

/// The default filter: our events at info; the libraries' chatter (openraft dumps its state
/// across many lines at info) only when it is a warning.
pub const DEFAULT_FILTER: &str = "info,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn";

/// Installs the global subscriber. The filter comes from `CURVINE_LOG` (default [`DEFAULT_FILTER`]),
/// the format from the flag, else `CURVINE_LOG_FORMAT`, else text.
pub fn init(format: Option<LogFormat>, env: &EnvSnapshot, to_stderr: bool) {
    let filter = EnvFilter::try_new(env.get(env::CURVINE_LOG).unwrap_or(DEFAULT_FILTER))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = match format {
        Some(f) => f == LogFormat::Json,
        None => env
            .get(env::CURVINE_LOG_FORMAT)
            .is_some_and(|f| f.eq_ignore_ascii_case("json")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match (json, to_stderr) {
        (true, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (true, false) => builder.json().with_writer(std::io::stdout).try_init(),
        (false, true) => builder.with_writer(std::io::stderr).try_init(),
        (false, false) => builder.with_writer(std::io::stdout).try_init(),
    };
}
