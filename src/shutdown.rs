//! Stopping: a [`Shutdown`] handle every server and background task watches, the
//! [`ShutdownTrigger`] that fires it, and [`wait_for_signal`] for SIGTERM and SIGINT (the
//! binary is PID 1 in a container, where default signal handling does not apply).

use tokio::sync::watch;

/// Fires the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Tells a task that shutdown started. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A new trigger and its handle.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Starts the shutdown (idempotent).
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }

    /// A handle watching this trigger.
    pub fn handle(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether shutdown started.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown starts (or the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

/// Waits for SIGTERM or SIGINT and returns its name.
pub async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = quit.recv() => "SIGQUIT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handles_see_the_trigger() {
        let (trigger, mut a) = channel();
        let mut b = trigger.handle();
        assert!(!a.is_triggered());
        let waiter = tokio::spawn(async move { b.wait().await });
        trigger.fire();
        a.wait().await;
        assert!(a.is_triggered());
        waiter.await.unwrap();
    }
}
