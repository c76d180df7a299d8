//! `seed serve`: the OpenAI-compatible HTTP server.
//!
//! Flags (and a platform config's editions) become a [`server::ServerConfig`] and one
//! [`engine::EngineConfig`] per model; the server listens at once (`/health` answers 503)
//! while the weights load on their own thread, then admits requests. SIGINT/SIGTERM drain
//! it and it exits 0.
//!
//! With `--config`, every distinct model its editions name is loaded, each with its own engine
//! (its own thread, KV pool and scheduler), and a request goes to the engine of the edition it
//! names. The cores are split between the engines (`--threads` in all, not each), so one
//! edition's traffic cannot slow another's kernels down by oversubscribing the cores; each
//! engine gets a KV pool of `--ctx` × `--parallel` positions of its own model, or an equal
//! share of `--kv-memory`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use engine::scheduler::SchedulerConfig;
use engine::{Engine, EngineConfig};
use model::kv_cache::KvCache;
use seed::catalogue;
use server::{AppState, ServedModel, ServerConfig};

use super::common::ModelArgs;

/// Arguments of `seed serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A catalogue name (see `seed models`) or a path to a .gguf file [default: smollm2-135m-instruct;
    /// with a config that defines editions, none: the editions' models are served].
    /// With such a config it is served too, first, and editions naming it answer to it.
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Compute threads in all (default: one per CPU); with several models they are split evenly
    /// between their engines (at least one each).
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Context length: positions the KV cache holds per sequence (default 4096, at most the
    /// model's training context).
    #[arg(long, short = 'c')]
    ctx: Option<usize>,
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
    /// Every distinct model its editions name is loaded (fetched on first use) with an engine of
    /// its own; a request goes to the engine of the edition it names, with the edition's persona
    /// and default sampling. With tenants defined, every route but /health needs a tenant key
    /// (`seed keys create`); a tenant may use only editions allowed to it and served in its
    /// region (else 403).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Serve one region of the config only (a replica of that region's fleet): its store, its
    /// tenants and keys, the editions served in it. Other regions' tenants get 401 here.
    #[arg(long)]
    region: Option<String>,
    /// The KV pool holds `--ctx` × `--parallel` positions (unless --kv-memory), one such pool
    /// per model; any number of requests run at once while their tokens fit.
    #[arg(long, short = 'p', default_value_t = 8)]
    parallel: usize,
    /// KV pool size in MiB in all (instead of --ctx × --parallel), split evenly between models.
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
    /// Answer HAProxy's agent check on this port (same address as --host): `ready up W%`
    /// (W from KV use and queue), `drain` once shutdown begins, `down` while loading.
    #[arg(long)]
    agent_port: Option<u16>,
    /// Seconds a request's usage row is leased, renewed every third of it while the request
    /// runs: if this process is killed, its requests free their tenants' concurrency slots and
    /// are closed as `interrupted` at most this long after.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    request_lease: u64,
    /// The (first) model's id in /v1/models (default: the catalogue name or file stem).
    #[arg(long)]
    model_id: Option<String>,
    /// Another name requests may use for the (first) model (repeatable).
    #[arg(long)]
    alias: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Threads of the HTTP runtime (parsing, streaming, stores run on its blocking pool). One
    /// is plenty beside the compute threads on a small machine, and each streamed token then
    /// wakes one thread, not two: every wake takes a core from the compute threads.
    #[arg(long, default_value_t = 1)]
    http_threads: usize,
    /// Pin each compute thread to a CPU of its own and keep the HTTP runtime off the CPUs of
    /// the engine threads (which sample and stream between steps), so a streamed token's wakes
    /// never take the core the next step starts on. auto: when the compute threads take every
    /// CPU this process may use (there, every wake of another thread takes a compute thread's
    /// core); on: whenever there are CPUs enough; off: leave placement to the system.
    #[arg(long, value_enum, default_value_t = Pin::Auto)]
    pin_threads: Pin,
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
    let mut platform = match &args.config {
        Some(p) => Some(platform::Config::load(p).with_context(|| format!("invalid config {}", p.display()))?),
        None => None,
    };
    if let Some(name) = &args.region {
        let all = platform.as_ref().context("--region needs --config")?;
        let one = all.only_region(name).with_context(|| {
            let names: Vec<&str> = all.regions.iter().map(|r| r.name.as_str()).collect();
            format!("no region `{name}` in the config (regions: {})", names.join(", "))
        })?;
        anyhow::ensure!(!one.editions.is_empty(), "no edition is served in region `{name}`");
        platform = Some(one);
    }
    anyhow::ensure!(
        !(args.api_key.is_some() && platform.as_ref().is_some_and(|c| !c.tenants.is_empty())),
        "--api-key and a config with tenants exclude each other: tenants use `seed keys` keys"
    );
    let models = models_to_serve(&args, platform.as_ref())?;
    let first = models.first().context("no model to serve")?;
    let mut cfg = ServerConfig::new(first.id.clone());
    cfg.aliases = first.aliases.clone();
    cfg.extra_models =
        models[1..].iter().map(|m| ServedModel { id: m.id.clone(), aliases: m.aliases.clone() }).collect();
    cfg.api_key = args.api_key.clone();
    cfg.stores = super::usage::open_stores(platform.as_ref(), args.data_dir.as_deref(), args.store_max_pages)?;
    if platform.as_ref().is_some_and(|c| !c.tenants.is_empty()) {
        cfg.keys = Some(Arc::new(platform::KeyStore::new(cfg.stores.regions.values().cloned().collect())));
    }
    if let Some(c) = &platform {
        cfg.platform = Some(Arc::new(c.clone()));
    }
    cfg.drain_timeout = Duration::from_secs(args.drain_timeout);
    cfg.agent_port = args.agent_port;
    cfg.lease = Duration::from_secs(args.request_lease);
    cfg.limits.max_body_bytes = args.max_body;
    anyhow::ensure!(
        args.max_connections > 0 && args.header_timeout > 0,
        "--max-connections and --header-timeout must be positive"
    );
    cfg.connections.max_connections = args.max_connections;
    cfg.connections.header_read_timeout = Duration::from_secs(args.header_timeout);
    let state = AppState::new(cfg);
    let addr = SocketAddr::new(args.host, args.port);
    anyhow::ensure!(args.http_threads > 0, "--http-threads must be positive");
    let total = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(total > 0, "--threads must be positive");
    let threads: Vec<usize> = (0..models.len()).map(|i| share(total, i, models.len())).collect();
    let cpus = plan_cpus(args.pin_threads, &kernels::affinity::allowed_cpus(), &threads);
    let runtime = server::Runtime { threads: args.http_threads, cpus: cpus.http };
    server::run(addr, state, runtime, move |state| {
        for (index, m) in models.iter().enumerate() {
            let placement = (threads[index], cpus.engines.get(index).cloned().unwrap_or_default());
            if let Err(e) = load(&args, m, (index, models.len()), placement, state) {
                eprintln!("error: {e:#}");
                state.set_failed(format!("{e:#}"));
                std::process::exit(1);
            }
        }
    })
    .context("serving")?;
    eprintln!("stopped");
    Ok(())
}

/// One model to load: where it is, its id, and the further names requests reach it by.
#[derive(Debug)]
struct ModelPlan {
    path: PathBuf,
    id: String,
    aliases: Vec<String>,
}

/// The models to serve, each once (models resolving to the same file are one): `--model` (or
/// the default) with flags alone; with a config that defines editions, `--model` if given, then
/// every model its editions name, in file order, each answering to its editions' names. Hub
/// references are pulled on first use, with `--region` from that region's `model_hub`.
fn models_to_serve(args: &ServeArgs, platform: Option<&platform::Config>) -> anyhow::Result<Vec<ModelPlan>> {
    let editions = platform.map_or(&[][..], |c| c.editions.as_slice());
    let mut specs: Vec<&str> = Vec::new();
    match (&args.model, editions.is_empty()) {
        (Some(m), _) => specs.push(m),
        (None, true) => specs.push(catalogue::DEFAULT_MODEL),
        (None, false) => {}
    }
    specs.extend(editions.iter().map(|e| e.model.as_str()));
    // A replica of one region fetches hub models from where that region says.
    let region_hub = match (&args.region, platform) {
        (Some(_), Some(c)) => c.regions.first().and_then(|r| r.model_hub.as_deref()),
        _ => None,
    };
    let sources = seed::hub::Sources::for_region(region_hub)?;
    let mut plans: Vec<ModelPlan> = Vec::new();
    let mut keys: Vec<PathBuf> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let path =
            catalogue::resolve_model_from(spec, &sources).with_context(|| format!("resolving the model `{spec}`"))?;
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !keys.contains(&key) {
            let id = match (i, &args.model_id) {
                (0, Some(id)) => id.clone(),
                _ => default_id(spec, &path),
            };
            anyhow::ensure!(
                plans.iter().all(|p| p.id != id),
                "two different models would both be served as `{id}`: rename one file"
            );
            let aliases = if i == 0 { args.alias.clone() } else { Vec::new() };
            plans.push(ModelPlan { path, id, aliases });
            keys.push(key);
        }
    }
    // Each edition answers through the model it names.
    for e in editions {
        let path = catalogue::resolve_model_from(&e.model, &sources)?;
        let key = std::fs::canonicalize(&path).unwrap_or(path);
        if let Some(i) = keys.iter().position(|k| *k == key) {
            plans[i].aliases.push(e.name.clone());
        }
    }
    Ok(plans)
}

/// A catalogue name or hub reference (`hf.co/OWNER/REPO:Q8_0`) as it is; a file by its stem.
fn default_id(arg: &str, path: &Path) -> String {
    use seed::hub::Reference;
    let hub_name = matches!(Reference::parse(arg), Some(Ok(Reference::Quant { .. } | Reference::File { .. })));
    if catalogue::lookup(arg).is_some() || hub_name {
        return arg.to_string();
    }
    path.file_stem().map_or_else(|| arg.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Loads model `index` of `count`, sizes its KV pool, starts its engine on its `threads`
/// (pinned to `cpus` unless empty), marks it ready.
fn load(
    args: &ServeArgs,
    plan: &ModelPlan,
    (index, count): (usize, usize),
    (threads, cpus): (usize, Vec<usize>),
    state: &AppState,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = &plan.path;
    let loaded = Arc::new(catalogue::open_model(path)?);
    // An edition's own chat format must compile before anything is served with it.
    for e in state.config().platform.iter().flat_map(|p| &p.editions) {
        if let (true, Some(source)) = (plan.aliases.contains(&e.name), &e.chat_template) {
            loaded.compile_template(source).with_context(|| format!("edition `{}`: chat_template", e.name))?;
        }
    }
    let hp = loaded.model.hparams();
    let model_args = ModelArgs { model: plan.id.clone(), threads: args.threads, ctx: args.ctx };
    let n_ctx = model_args.n_ctx(&loaded);
    let block_bytes = KvCache::bytes_per_position(hp) * args.block_size;
    let n_blocks = match args.kv_memory {
        Some(mib) => ((mib << 20) / count.max(1)) / block_bytes.max(1),
        None => (n_ctx * args.parallel).div_ceil(args.block_size),
    };
    anyhow::ensure!(n_blocks > 0, "the KV pool of `{}` holds no block: raise --kv-memory", plan.id);
    let pinned = if cpus.is_empty() { String::new() } else { format!(" pinned to CPUs {cpus:?}") };
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
        cpus,
    };
    let engine =
        Engine::start(Arc::clone(&loaded), cfg).with_context(|| format!("starting the engine of `{}`", plan.id))?;
    eprintln!(
        "loaded {} as `{}` ({}, {} layers) in {:.0} ms; context {n_ctx}; KV pool {n_blocks} blocks × {} positions \
         ({} MiB); {threads} threads{pinned}, {} kernels; ready{}",
        path.display(),
        plan.id,
        hp.arch,
        hp.n_layer,
        started.elapsed().as_secs_f64() * 1e3,
        args.block_size,
        (n_blocks * block_bytes) >> 20,
        kernels::active_isa(),
        if plan.aliases.is_empty() { String::new() } else { format!(" (also as {})", plan.aliases.join(", ")) }
    );
    state.set_ready_at(index, loaded, engine);
    Ok(())
}

/// When `seed serve` pins threads (`--pin-threads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// When the compute threads take every CPU the process may use.
    Auto,
    /// Whenever there are CPUs enough for one per compute thread.
    On,
    /// Never.
    Off,
}

/// Where the threads run: each engine's compute threads (its engine thread
/// first), and the CPUs the HTTP runtime is kept to; empty lists leave
/// placement to the system.
#[derive(Debug, PartialEq, Eq)]
struct CpuPlan {
    engines: Vec<Vec<usize>>,
    http: Vec<usize>,
}

/// Gives the engines' `threads` consecutive CPUs of `allowed` (when `pin` says
/// so and they fit), and the HTTP runtime the CPUs left once the engine threads'
/// are taken out (none left: any CPU).
fn plan_cpus(pin: Pin, allowed: &[usize], threads: &[usize]) -> CpuPlan {
    let total: usize = threads.iter().sum();
    let pinned = match pin {
        Pin::Off => false,
        Pin::On => total <= allowed.len(),
        Pin::Auto => total == allowed.len(),
    };
    if !pinned || total == 0 {
        return CpuPlan { engines: Vec::new(), http: Vec::new() };
    }
    let mut next = allowed.iter().copied();
    let engines: Vec<Vec<usize>> = threads.iter().map(|&n| next.by_ref().take(n).collect()).collect();
    let http = allowed.iter().copied().filter(|c| !engines.iter().any(|e| e.first() == Some(c))).collect();
    CpuPlan { engines, http }
}

/// Engine `index`'s share of `total` threads split between `count` engines: even, the
/// remainder to the first, at least one each.
fn share(total: usize, index: usize, count: usize) -> usize {
    let count = count.max(1);
    (total / count + usize::from(index < total % count)).max(1)
}

#[cfg(test)]
mod tests {
    use super::{plan_cpus, share, CpuPlan, Pin};

    #[test]
    fn threads_are_pinned_only_when_they_take_every_cpu_unless_asked() {
        let none = CpuPlan { engines: Vec::new(), http: Vec::new() };
        // Two compute threads on a two-CPU machine: the engine thread alone on the first
        // CPU, the worker and the HTTP runtime on the second.
        assert_eq!(plan_cpus(Pin::Auto, &[0, 1], &[2]), CpuPlan { engines: vec![vec![0, 1]], http: vec![1] });
        // The allowed set need not start at 0 or be contiguous.
        assert_eq!(
            plan_cpus(Pin::Auto, &[2, 5, 7], &[2, 1]),
            CpuPlan { engines: vec![vec![2, 5], vec![7]], http: vec![5] }
        );
        // Spare CPUs: the HTTP side has room of its own, so `auto` leaves placement alone.
        assert_eq!(plan_cpus(Pin::Auto, &[0, 1, 2, 3], &[2]), none);
        assert_eq!(plan_cpus(Pin::On, &[0, 1, 2, 3], &[2]), CpuPlan { engines: vec![vec![0, 1]], http: vec![1, 2, 3] });
        // More threads than CPUs, or pinning off: nothing pinned.
        assert_eq!(plan_cpus(Pin::On, &[0, 1], &[3]), none);
        assert_eq!(plan_cpus(Pin::Off, &[0, 1], &[2]), none);
        assert_eq!(plan_cpus(Pin::Auto, &[], &[2]), none);
        // Every CPU holds an engine thread: the HTTP runtime may run anywhere.
        assert_eq!(plan_cpus(Pin::Auto, &[0, 1], &[1, 1]), CpuPlan { engines: vec![vec![0], vec![1]], http: vec![] });
    }

    #[test]
    fn threads_are_split_evenly_with_at_least_one_each() {
        assert_eq!((0..2).map(|i| share(2, i, 2)).collect::<Vec<_>>(), [1, 1]);
        assert_eq!((0..2).map(|i| share(5, i, 2)).collect::<Vec<_>>(), [3, 2]);
        assert_eq!((0..3).map(|i| share(2, i, 3)).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(share(8, 0, 1), 8);
    }
}
