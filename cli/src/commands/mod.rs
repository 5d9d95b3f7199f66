//! One module per subcommand.

pub mod bench;
pub mod collect;
pub mod install;
pub mod migrate;
pub mod origin;
pub mod run;
pub mod simulate;
pub mod streams;
mod test_stream;
pub mod topics;
pub mod up;

use tokio_util::sync::CancellationToken;

/// A token cancelled on Ctrl-C or SIGTERM, for clean shutdown.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                    let _ = tokio::signal::ctrl_c().await;
                    cancel.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}
