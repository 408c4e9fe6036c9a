//! The FUSE client's web port (`fuse.web_port`): `/healthz` answers 200 only while the
//! mount answers a `stat` (a readiness probe for the client pod), `/api/overview` shows
//! the mount's state, `/metrics` a gauge of it. The mount is probed from a background
//! thread, so a hung mount makes the probe fail instead of hanging the web server.

use crate::web::WebApp;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the mount is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// What the last probe found.
#[derive(Debug, Clone)]
enum State {
    /// The mount is not made yet.
    Mounting,
    /// The mount answered at this time.
    Answering(Instant),
    /// The probe failed or has not answered.
    Failing(String),
}

/// The client's health, shared by the prober and the web server.
#[derive(Debug)]
pub struct ClientHealth {
    mnt_path: PathBuf,
    fs_path: String,
    masters: Vec<String>,
    state: Mutex<State>,
    /// The mount's cluster client, for its short-circuit counters.
    client: crate::client::Client,
}

impl ClientHealth {
    /// Health of the mount at `mnt_path` (cluster path `fs_path`) served by `client`, not
    /// mounted yet.
    pub fn new(
        mnt_path: PathBuf,
        fs_path: String,
        masters: Vec<String>,
        client: crate::client::Client,
    ) -> Arc<Self> {
        Arc::new(ClientHealth {
            mnt_path,
            fs_path,
            masters,
            state: Mutex::new(State::Mounting),
            client,
        })
    }

    fn set(&self, state: State) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    fn get(&self) -> State {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| State::Failing("health state poisoned".into()))
    }

    /// Starts probing the mount (call once it is made). The thread ends with the
    /// process; a probe stuck in the kernel only delays the next one.
    pub fn start_probing(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("mount-probe".into())
            .spawn(move || {
                // The stat runs on its own thread so a hung mount cannot stop this loop;
                // a new one starts only when the last one returned.
                let mut in_flight: Option<std::sync::mpsc::Receiver<std::io::Result<()>>> = None;
                loop {
                    let rx = match in_flight.take() {
                        Some(rx) => rx,
                        None => {
                            let (tx, rx) = std::sync::mpsc::channel();
                            let path = me.mnt_path.clone();
                            let _ = std::thread::Builder::new().name("mount-stat".into()).spawn(
                                move || {
                                    let _ = tx.send(std::fs::metadata(&path).map(|_| ()));
                                },
                            );
                            rx
                        }
                    };
                    let state = match rx.recv_timeout(PROBE_EVERY) {
                        Ok(Ok(())) => State::Answering(Instant::now()),
                        Ok(Err(e)) => State::Failing(format!("stat of the mount failed: {e}")),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            in_flight = Some(rx);
                            State::Failing(format!(
                                "the mount did not answer a stat within {} s",
                                PROBE_EVERY.as_secs()
                            ))
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            State::Failing("the probe thread could not start".into())
                        }
                    };
                    me.set(state);
                    std::thread::sleep(PROBE_EVERY);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| self.set(State::Failing(format!("cannot start the probe: {e}"))));
    }
}

impl WebApp for ClientHealth {
    fn healthy(&self) -> Result<(), String> {
        match self.get() {
            State::Answering(_) => Ok(()),
            State::Mounting => Err(format!(
                "not mounted yet at {}: waiting for the masters",
                self.mnt_path.display()
            )),
            State::Failing(why) => Err(why),
        }
    }

    fn overview(&self) -> futures::future::BoxFuture<'_, serde_json::Value> {
        let (state, detail) = match self.get() {
            State::Mounting => ("mounting", String::new()),
            State::Answering(at) => (
                "mounted",
                format!("answered {} ms ago", at.elapsed().as_millis()),
            ),
            State::Failing(why) => ("failing", why),
        };
        let doc = serde_json::json!({
            "role": "client",
            "mnt_path": self.mnt_path.display().to_string(),
            "fs_path": self.fs_path,
            "masters": self.masters,
            "state": state,
            "detail": detail,
        });
        Box::pin(std::future::ready(doc))
    }

    fn metrics(&self) -> String {
        let up = u8::from(matches!(self.get(), State::Answering(_)));
        let local = self.client.short_circuit();
        format!(
            "# HELP curvine_fuse_mount_answering 1 when the FUSE mount answered its last probe.\n\
             # TYPE curvine_fuse_mount_answering gauge\n\
             curvine_fuse_mount_answering {up}\n\
             # HELP curvine_client_short_circuit_opens_total Blocks this client read or wrote \
             through a local worker's socket (short-circuit I/O), by mode.\n\
             # TYPE curvine_client_short_circuit_opens_total counter\n\
             curvine_client_short_circuit_opens_total{{mode=\"read\"}} {}\n\
             curvine_client_short_circuit_opens_total{{mode=\"write\"}} {}\n",
            local.read_opens(),
            local.write_opens()
        )
    }
}
