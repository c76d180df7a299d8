//! What the server is configured with: the names it serves the model under,
//! the API key, and the limits that validation enforces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use platform::Store;

/// The tenant of a server without tenant keys.
pub const LOCAL_TENANT: &str = "local";

/// The open stores.
#[derive(Clone, Debug, Default)]
pub struct Stores {
    /// Each region's store, by region name.
    pub regions: BTreeMap<String, Arc<Store>>,
    /// The store of a server without tenants (`<data dir>/seed.sqlite`).
    pub local: Option<Arc<Store>>,
}

/// Caps on what one request may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes (413 past it).
    pub max_body_bytes: usize,
    /// Most choices per request (`n`, times the prompts of a completion).
    pub max_choices: usize,
    /// Most stop strings.
    pub max_stop: usize,
    /// Longest stop string, in bytes.
    pub max_stop_bytes: usize,
    /// Most `top_logprobs` (and completions' `logprobs`).
    pub max_top_logprobs: usize,
    /// Most `logit_bias` entries.
    pub max_logit_bias: usize,
    /// Most chat messages.
    pub max_messages: usize,
    /// Most inputs of one embeddings request (each is a request of the engine's queue).
    pub max_embedding_inputs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_choices: 16,
            max_stop: 4,
            max_stop_bytes: 256,
            max_top_logprobs: 20,
            max_logit_bias: 1024,
            max_messages: 1024,
            max_embedding_inputs: 256,
        }
    }
}

/// Caps on what one client may hold of the server's sockets and memory before
/// a request reaches a handler (slow-loris and connection-flood defences).
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Most open connections; past it a new connection gets a 503 and is closed.
    pub max_connections: usize,
    /// Time a connection has to send a request's whole header, counted from when
    /// the server starts waiting for it (so idle keep-alive connections close too).
    pub header_read_timeout: Duration,
    /// Largest request header section in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Most request header fields (431 past it).
    pub max_headers: usize,
    /// Time a request has to send its whole body (400 past it).
    pub body_read_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// One more model a server runs beside its first, and the names requests reach it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
    /// Its id in `/v1/models` (a catalogue name or a file stem).
    pub id: String,
    /// Further names a request's `model` may use for it (its editions).
    pub aliases: Vec<String>,
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The first (with flags alone, the only) model's id in `/v1/models` and responses.
    pub model_id: String,
    /// Further names a request's `model` may use for the first model.
    pub aliases: Vec<String>,
    /// The models after the first, each with its own engine (a config whose editions name
    /// several models); empty with flags alone.
    pub extra_models: Vec<ServedModel>,
    /// When set, every route but `/health` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// When set (a platform config with tenants), every route but `/health` needs a tenant's key
    /// from this store; the request then carries its [`crate::extract::Caller`].
    pub keys: Option<std::sync::Arc<platform::KeyStore>>,
    /// The platform configuration: with a [`crate::extract::Caller`], a request's `model` must
    /// be an edition its tenant may use (served in its region and allowed to it), else 403.
    pub platform: Option<std::sync::Arc<platform::Config>>,
    /// The conversation and usage stores: each region's, and the local one used without tenants.
    pub stores: Stores,
    /// How long a request's usage row is leased unless renewed ([`crate::quota::LEASE`]): the
    /// longest a killed replica's request keeps its tenant's concurrency slot.
    pub lease: Duration,
    /// Request caps.
    pub limits: Limits,
    /// Connection caps.
    pub connections: ConnLimits,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    pub drain_timeout: Duration,
    /// The port of HAProxy's agent check ([`crate::agent`]), on the server's address; none
    /// without.
    pub agent_port: Option<u16>,
}

impl ServerConfig {
    /// A configuration serving `model_id` with default limits and no key.
    pub fn new(model_id: impl Into<String>) -> Self {
        ServerConfig {
            model_id: model_id.into(),
            aliases: Vec::new(),
            extra_models: Vec::new(),
            api_key: None,
            keys: None,
            platform: None,
            stores: Stores::default(),
            lease: crate::quota::LEASE,
            limits: Limits::default(),
            connections: ConnLimits::default(),
            drain_timeout: Duration::from_secs(30),
            agent_port: None,
        }
    }

    /// With a platform config and a caller: 403 unless the caller's tenant may use `model`.
    pub fn check_edition(&self, caller: Option<&crate::extract::Caller>, model: &str) -> Result<(), crate::ApiError> {
        let (Some(p), Some(caller)) = (&self.platform, caller) else { return Ok(()) };
        let Some(tenant) = p.tenant(&caller.tenant) else {
            return Err(crate::ApiError::Forbidden(format!("tenant `{}` is not configured", caller.tenant)));
        };
        if p.may_use(tenant, model) {
            return Ok(());
        }
        Err(crate::ApiError::Forbidden(format!(
            "tenant `{}` (region `{}`) may not use `{model}`; its editions: {}",
            tenant.id,
            tenant.region,
            tenant.editions.join(", ")
        )))
    }

    /// The store and tenant id for a caller: its tenant's region's store (residency: never
    /// another's), or the local store and tenant `local` without tenant keys.
    pub fn store_for(&self, caller: Option<&crate::extract::Caller>) -> Result<(Arc<Store>, String), crate::ApiError> {
        let none = || crate::ApiError::Unavailable("no conversation store is configured".into());
        match caller {
            Some(c) => {
                let region =
                    self.platform.as_ref().and_then(|p| p.tenant(&c.tenant)).map(|t| t.region.clone()).ok_or_else(
                        || crate::ApiError::Forbidden(format!("tenant `{}` is not configured", c.tenant)),
                    )?;
                let store = self.stores.regions.get(&region).cloned().ok_or_else(none)?;
                Ok((store, c.tenant.clone()))
            }
            None => Ok((self.stores.local.clone().ok_or_else(none)?, LOCAL_TENANT.to_string())),
        }
    }

    /// An edition's prices per million tokens (zero without a configuration).
    pub fn prices(&self, edition: &str) -> platform::config::Prices {
        self.platform.as_ref().and_then(|p| p.edition(edition)).map(|e| e.prices).unwrap_or_default()
    }

    /// Every model served, the first first, each with the names it answers to.
    pub fn served_models(&self) -> Vec<ServedModel> {
        let first = ServedModel { id: self.model_id.clone(), aliases: self.aliases.clone() };
        std::iter::once(first).chain(self.extra_models.iter().cloned()).collect()
    }

    /// Whether a request's `model` names a served model (by id or alias).
    pub fn serves(&self, name: &str) -> bool {
        self.served_models().iter().any(|m| m.id == name || m.aliases.iter().any(|a| a == name))
    }

    /// The edition a request's `model` names, if the platform config defines one by that name.
    pub fn edition(&self, name: &str) -> Option<&platform::config::Edition> {
        self.platform.as_ref().and_then(|p| p.edition(name))
    }
}
