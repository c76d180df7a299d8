//! Running the server: bind, load the model while already answering `/health`
//! (503 until ready), serve, and shut down gracefully.
//!
//! Shutdown (SIGTERM, SIGINT, or the given future): new requests get 503 and
//! `/health` turns 503 at once; the engine lets running requests finish for up
//! to the drain timeout, then cancels the rest, whose streams end with an error
//! frame and `[DONE]`; then the listener closes and open connections get a
//! short grace to finish before the function returns.
//!
//! Connections are served by our own accept loop over hyper (axum's `serve`
//! has no header-read timeout), under [`ConnLimits`]: at most
//! `max_connections` open at once (past it a connection is answered 503 and
//! closed), a header-read timeout that also closes idle keep-alive
//! connections, and caps on the header section's size and field count (431).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::config::ConnLimits;
use crate::error::ApiError;

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
    // From the start, this replica closes requests a killed one left running in its stores.
    let stores = &state.config().stores;
    for store in stores.regions.values().chain(stores.local.iter()) {
        state.leases().watch(store);
    }
    let (closed_tx, closed_rx) = watch::channel(false);
    let drainer = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        drainer.begin_shutdown();
        let drain = drainer.config().drain_timeout;
        let s = drainer.clone();
        // Joins the engine threads: blocking. The engines drain side by side, so the
        // drain timeout bounds the whole shutdown, not each engine's.
        let _ = tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                for (_, b) in s.backends().loaded() {
                    scope.spawn(move || b.engine.shutdown(drain));
                }
            });
        })
        .await;
        let _ = closed_tx.send(true);
    });
    let limits = state.config().connections.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let mut closed = closed_rx.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors or a connection reset before accept:
                // back off a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = async { let _ = closed.wait_for(|&c| c).await; } => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(stream, &limits);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut closed = closed_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = async { let _ = closed.wait_for(|&c| c).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    // Open connections finish their response, then close; past the grace they are dropped.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(CLOSE_GRACE, slots.acquire_many(all)).await;
    Ok(())
}

/// Answers a connection past the cap with a 503 in the error envelope, without
/// waiting for the client, and closes it.
fn refuse(stream: TcpStream, limits: &ConnLimits) {
    let err = ApiError::Unavailable(format!(
        "the server has {} open connections, its limit; retry shortly",
        limits.max_connections
    ));
    let body = err.body().to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // One non-blocking write: a fresh socket's send buffer takes it whole.
    let _ = stream.try_write(format!("{head}{body}").as_bytes());
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

/// The HTTP runtime's threads.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Worker threads (parsing, streaming); blocking work gets a pool of its own.
    pub threads: usize,
    /// CPUs every runtime thread is restricted to (empty: any). `seed serve`
    /// keeps them off the engine threads' CPUs when it pins those (see
    /// `kernels::affinity`).
    pub cpus: Vec<usize>,
}

/// The whole life of `seed serve`: a runtime, the listener on `addr`, `load`
/// run on its own thread (it calls [`AppState::set_ready`] or
/// [`AppState::set_failed`]), serving until SIGINT/SIGTERM, and the drain.
/// Prints `listening on http://ADDR` to stderr once bound (with port 0, the
/// port chosen).
pub fn run(
    addr: SocketAddr,
    state: AppState,
    runtime: Runtime,
    load: impl FnOnce(&AppState) + Send + 'static,
) -> std::io::Result<()> {
    let cpus = runtime.cpus;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime.threads.max(1))
        .on_thread_start(move || {
            kernels::affinity::set_current_thread_cpus(&cpus);
        })
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        if let Some(port) = state.config().agent_port {
            let agent = TcpListener::bind(SocketAddr::new(addr.ip(), port)).await?;
            eprintln!("agent check on {}", agent.local_addr()?);
            tokio::spawn(crate::agent::serve_agent(agent, state.clone()));
        }
        let loader = state.clone();
        std::thread::Builder::new().name("seed-load".into()).spawn(move || load(&loader))?;
        serve(listener, state, signal()).await
    })?;
    // Connections that outlived the grace are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
