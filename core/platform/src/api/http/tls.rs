//! The API over TLS (axum-server's rustls acceptor): the certificate and
//! key from their files, read again when either changes (checked every
//! second), so a renewed certificate is served without a restart; a
//! renewal that does not load is refused and the one in force kept, with
//! the reason logged.

use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;

use crate::tls::{Edge, Loaded, TlsFiles};

/// How often the files are looked at.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` with TLS from `files` (already loaded as
/// `first`) until `shutdown` fires.
pub(super) async fn serve(
    app: Router,
    listener: tokio::net::TcpListener,
    files: TlsFiles,
    first: Loaded,
    edge: Edge,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = RustlsConfig::from_config(first.config);
    let handle = axum_server::Handle::new();
    let reload = tokio::spawn(watch(files, config.clone(), edge, shutdown.clone()));
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let served = axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app.into_make_service())
        .await;
    reload.abort();
    served
}

/// Loads the files again whenever one changes.
async fn watch(files: TlsFiles, config: RustlsConfig, edge: Edge, shutdown: CancellationToken) {
    let mut seen = files.changed_at();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RELOAD_EVERY) => {}
        }
        let now = files.changed_at();
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        match files.load() {
            Ok(loaded) => {
                edge.reloaded(&loaded);
                config.reload_from_config(loaded.config);
                tracing::info!(sha256 = %loaded.fingerprint, "TLS certificate reloaded");
            }
            Err(e) => {
                edge.refused(e.to_string());
                tracing::warn!(error = %e, "TLS certificate not reloaded; the one in force stays");
            }
        }
    }
}
