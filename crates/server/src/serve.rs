//! Running the server: bind, load the model while already answering `/health`
//! (503 until ready), serve, and shut down gracefully.
//!
//! Shutdown (SIGTERM, SIGINT, or the given future): new requests get 503 and
//! `/health` turns 503 at once; the engine lets running requests finish for up
//! to the drain timeout, then cancels the rest, whose streams end with an error
//! frame and `[DONE]`; then the listener closes and open connections get a
//! short grace to finish before the function returns.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::routes::router;
use crate::state::AppState;

/// How long connections may linger once the engine has drained.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves `state` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
    let drainer = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        drainer.begin_shutdown();
        let drain = drainer.config().drain_timeout;
        let s = drainer.clone();
        // Joins the engine thread: blocking.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(b) = s.backend_any() {
                b.engine.shutdown(drain);
            }
        })
        .await;
        let _ = closed_tx.send(true);
    });
    let mut rx = closed_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = rx.wait_for(|&c| c).await;
    });
    let mut rx = closed_rx;
    let grace = async move {
        let _ = rx.wait_for(|&c| c).await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::select! {
        r = server => r,
        () = grace => Ok(()),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The whole life of `seed serve`: a runtime, the listener on `addr`, `load`
/// run on its own thread (it calls [`AppState::set_ready`] or
/// [`AppState::set_failed`]), serving until SIGINT/SIGTERM, and the drain.
/// Prints `listening on http://ADDR` to stderr once bound (with port 0, the
/// port chosen).
pub fn run(
    addr: SocketAddr,
    state: AppState,
    runtime_threads: usize,
    load: impl FnOnce(&AppState) + Send + 'static,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(runtime_threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        let loader = state.clone();
        std::thread::Builder::new().name("seed-load".into()).spawn(move || load(&loader))?;
        serve(listener, state, signal()).await
    })?;
    // Connections that outlived the grace are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
