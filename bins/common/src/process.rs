//! The runtime and the signals: only binaries start one and listen for the other.

use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

/// The multi-threaded runtime the binaries run on, with two worker threads.
///
/// # Errors
/// The runtime cannot be built (threads or the I/O driver cannot be set up).
pub fn runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))
}

/// On the first SIGTERM (Kubernetes stopping the pod) or Ctrl-C, logs
/// `stop requested: {stopping}` and calls `stop`, so the run ends gracefully.
/// Must be called inside the runtime.
pub fn on_stop_signal(stopping: &'static str, stop: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for signals");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stop requested: {stopping}");
        stop();
    });
}
