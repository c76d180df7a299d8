//! `seed serve`: the OpenAI-compatible HTTP server.
//!
//! Flags become a [`server::ServerConfig`] and an [`engine::EngineConfig`]; the
//! server listens at once (`/health` answers 503) while the weights load on
//! their own thread, then admits requests. SIGINT/SIGTERM drain it and it exits 0.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use engine::scheduler::SchedulerConfig;
use engine::{Engine, EngineConfig};
use model::kv_cache::KvCache;
use model::LoadedModel;
use seed::catalogue;
use server::{AppState, ServerConfig};

use super::common::ModelArgs;

/// Arguments of `seed serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long)]
    api_key: Option<String>,
    /// Platform configuration (regions, editions, tenants), validated before anything starts.
    /// With tenants defined, every route but /health needs a tenant key (`seed keys create`).
    /// A tenant may use only editions allowed to it and served in its region (else 403); editions
    /// whose `model` is `--model` answer to their names (one model per process for now).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The KV pool holds `--ctx` × `--parallel` positions (unless --kv-memory);
    /// any number of requests run at once while their tokens fit.
    #[arg(long, short = 'p', default_value_t = 8)]
    parallel: usize,
    /// KV pool size in MiB (instead of --ctx × --parallel).
    #[arg(long)]
    kv_memory: Option<usize>,
    /// Positions per KV block (16: a shared system prompt is reused at a finer grain).
    #[arg(long, default_value_t = 16)]
    block_size: usize,
    /// Prompts are computed in chunks of this many tokens.
    #[arg(long, default_value_t = 256)]
    prefill_chunk: usize,
    /// Most tokens in one forward pass (decode tokens plus prompt chunks).
    #[arg(long, default_value_t = 512)]
    batch_tokens: usize,
    /// Most sequences decoding at once.
    #[arg(long, default_value_t = 128)]
    max_running: usize,
    /// Most requests waiting for admission; past it, 429 with Retry-After.
    #[arg(long, default_value_t = 256)]
    max_waiting: usize,
    /// Seconds in-flight requests may run on after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// The model's id in /v1/models (default: the catalogue name or file stem).
    #[arg(long)]
    model_id: Option<String>,
    /// Another name requests may use for the model (repeatable).
    #[arg(long)]
    alias: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Folder of the local conversation and usage store `seed.sqlite`, used when no tenant is
    /// configured (default: `$SEED_HOME`). With tenants, each region's `store` is used.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Testing: cap each store at this many pages (SQLite's max_page_count), so writes past it
    /// fail exactly as on a full disk.
    #[arg(long, hide = true)]
    store_max_pages: Option<u64>,
    /// Most open connections; past it a new connection gets 503 and is closed.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a connection has to send a request's headers (idle keep-alive
    /// connections are closed after it too).
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
}

/// Runs `seed serve` until SIGINT/SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.parallel > 0 && args.block_size > 0, "--parallel and --block-size must be positive");
    anyhow::ensure!(
        args.prefill_chunk > 0 && args.batch_tokens >= args.prefill_chunk,
        "--batch-tokens must be at least --prefill-chunk"
    );
    let platform = match &args.config {
        Some(p) => Some(platform::Config::load(p).with_context(|| format!("invalid config {}", p.display()))?),
        None => None,
    };
    anyhow::ensure!(
        !(args.api_key.is_some() && platform.as_ref().is_some_and(|c| !c.tenants.is_empty())),
        "--api-key and a config with tenants exclude each other: tenants use `seed keys` keys"
    );
    let path = catalogue::resolve_model(&args.model.model)?;
    let model_id = args.model_id.clone().unwrap_or_else(|| default_id(&args.model.model, &path));
    let mut cfg = ServerConfig::new(model_id);
    cfg.aliases = args.alias.clone();
    cfg.api_key = args.api_key.clone();
    cfg.stores = super::usage::open_stores(platform.as_ref(), args.data_dir.as_deref(), args.store_max_pages)?;
    if let Some(c) = platform.as_ref().filter(|c| !c.tenants.is_empty()) {
        cfg.keys = Some(Arc::new(platform::KeyStore::open(&c.keys)));
        // The month's usage so far comes from the tenants' region stores.
        let usage: Arc<dyn server::quota::MonthlyUsage> = Arc::new(server::quota::StoreUsage::new(c, &cfg.stores));
        cfg.quotas = Some(server::quota::QuotaKeeper::from_config(c, usage));
    }
    if let Some(c) = &platform {
        // Editions of the served model answer to their names (one model per process for now).
        let served = &args.model.model;
        cfg.aliases.extend(c.editions.iter().filter(|e| &e.model == served).map(|e| e.name.clone()));
        cfg.platform = Some(Arc::new(c.clone()));
    }
    cfg.drain_timeout = Duration::from_secs(args.drain_timeout);
    cfg.limits.max_body_bytes = args.max_body;
    anyhow::ensure!(
        args.max_connections > 0 && args.header_timeout > 0,
        "--max-connections and --header-timeout must be positive"
    );
    cfg.connections.max_connections = args.max_connections;
    cfg.connections.header_read_timeout = Duration::from_secs(args.header_timeout);
    let state = AppState::new(cfg);
    let addr = SocketAddr::new(args.host, args.port);
    server::run(addr, state, 2, move |state| {
        if let Err(e) = load(&args, &path, state) {
            eprintln!("error: {e:#}");
            state.set_failed(format!("{e:#}"));
            std::process::exit(1);
        }
    })
    .context("serving")?;
    eprintln!("stopped");
    Ok(())
}

/// A catalogue name as it is; a file by its stem.
fn default_id(arg: &str, path: &Path) -> String {
    if catalogue::lookup(arg).is_some() {
        return arg.to_string();
    }
    path.file_stem().map_or_else(|| arg.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Loads the weights, sizes the KV pool, starts the engine, marks the server ready.
fn load(args: &ServeArgs, path: &Path, state: &AppState) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = Arc::new(LoadedModel::open(path).with_context(|| format!("loading {}", path.display()))?);
    let hp = loaded.model.hparams();
    let n_ctx = args.model.n_ctx(&loaded);
    let block_bytes = KvCache::bytes_per_position(hp) * args.block_size;
    let n_blocks = match args.kv_memory {
        Some(mib) => (mib << 20) / block_bytes.max(1),
        None => (n_ctx * args.parallel).div_ceil(args.block_size),
    };
    anyhow::ensure!(n_blocks > 0, "the KV pool holds no block: raise --kv-memory");
    let threads = args.model.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cfg = EngineConfig {
        scheduler: SchedulerConfig {
            block_size: args.block_size,
            n_blocks,
            max_seq_len: n_ctx,
            prefill_chunk: args.prefill_chunk,
            max_batch_tokens: args.batch_tokens,
            max_running: args.max_running,
        },
        max_waiting: args.max_waiting,
        threads,
    };
    let engine = Engine::start(Arc::clone(&loaded), cfg).context("starting the engine")?;
    eprintln!(
        "loaded {} ({}, {} layers) in {:.0} ms; context {n_ctx}; KV pool {n_blocks} blocks × {} positions ({} MiB); \
         {threads} threads, {} kernels; ready",
        path.display(),
        hp.arch,
        hp.n_layer,
        started.elapsed().as_secs_f64() * 1e3,
        args.block_size,
        (n_blocks * block_bytes) >> 20,
        kernels::active_isa()
    );
    state.set_ready(loaded, engine);
    Ok(())
}
