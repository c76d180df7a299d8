//! `seed.toml`: `[[region]]`, `[[edition]]` and `[[tenant]]` tables.
//!
//! Parsing and validation are one step: [`Config::parse`] either returns a configuration in which
//! every reference resolves, or the first problem found, naming its line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::store::Location;

/// A configuration problem, with the 1-based line it was found on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or a field of the wrong type / unknown field.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line (0 when the parser gave no position).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A well-formed file whose contents do not hold together.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line the problem is on (0 when unknown).
    pub fn line(&self) -> usize {
        match self {
            ConfigError::Read { .. } => 0,
            ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => *line,
        }
    }
}

/// A region: where a tenant's conversations and usage are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Region name, e.g. `cn`.
    pub name: String,
    /// Where this region's conversations and usage are stored: a SQLite file, or a PostgreSQL
    /// database shared by the region's replicas.
    pub store: Location,
    /// Where this region's servers fetch `hf.co/…` models from: `huggingface`, `modelscope`
    /// (the repository of the same name there), or the http(s) URL of a mirror of Hugging
    /// Face's API. `None`: as the environment says (`HF_ENDPOINT`).
    pub model_hub: Option<String>,
}

/// Default sampling of an edition (a request's own values win).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Default completion length.
    pub max_tokens: Option<u32>,
}

/// Prices in an arbitrary currency unit per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per million uncached prompt tokens.
    #[serde(default)]
    pub input: f64,
    /// Per million prompt tokens served from the prefix cache.
    #[serde(default)]
    pub cached: f64,
    /// Per million completion tokens.
    #[serde(default)]
    pub output: f64,
}

/// An edition: what clients send as `model`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edition {
    /// Public name (`model` in requests).
    pub name: String,
    /// Catalogue name or GGUF path.
    pub model: String,
    /// System persona put first in a conversation that has no system message of its own.
    pub system: Option<String>,
    /// The chat format, for a model whose file has none (a base model) or to replace its own:
    /// the name of a built-in format (`gemma`) or a Jinja template's source.
    pub chat_template: Option<String>,
    /// Language tag, e.g. `zh` or `en`: the language of the chat page's interface.
    pub language: Option<String>,
    /// How the chat page presents it.
    pub face: Face,
    /// Default sampling.
    pub sampling: Sampling,
    /// Regions that serve this edition.
    pub regions: Vec<String>,
    /// Prices per million tokens.
    pub prices: Prices,
}

/// How the chat page presents an edition: all optional, the page has its own defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Face {
    /// The assistant's name as people see it (`display_name`; default: the edition's name).
    pub display_name: Option<String>,
    /// The first thing an empty chat shows.
    pub greeting: Option<String>,
    /// First prompts offered on an empty chat.
    pub suggestions: Vec<String>,
    /// The accent colour, `#rrggbb` (`#rgb` is widened).
    pub accent: Option<String>,
}

impl Face {
    /// Longest display name, in characters.
    pub const MAX_NAME: usize = 64;
    /// Longest greeting, in characters.
    pub const MAX_GREETING: usize = 500;
    /// Most suggestions.
    pub const MAX_SUGGESTIONS: usize = 6;
    /// Longest suggestion, in characters.
    pub const MAX_SUGGESTION: usize = 200;

    fn from_raw(e: &RawEdition) -> Result<Face, (usize, String)> {
        let text = |v: &Option<Spanned<String>>, field: &str, max: usize| -> Result<Option<String>, (usize, String)> {
            let Some(v) = v else { return Ok(None) };
            let n = v.get_ref().trim().chars().count();
            if n == 0 || n > max {
                return Err((v.span().start, format!("`{field}` must be 1 to {max} characters")));
            }
            Ok(Some(v.get_ref().trim().to_string()))
        };
        let mut suggestions = Vec::new();
        if let Some(list) = &e.suggestions {
            if list.get_ref().len() > Face::MAX_SUGGESTIONS {
                return Err((list.span().start, format!("at most {} `suggestions`", Face::MAX_SUGGESTIONS)));
            }
            for item in list.get_ref() {
                suggestions.extend(text(&Some(item.clone()), "suggestions", Face::MAX_SUGGESTION)?);
            }
        }
        let accent = match &e.accent {
            None => None,
            Some(a) => Some(hex_colour(a.get_ref()).ok_or_else(|| {
                (a.span().start, format!("`accent` must be a colour as `#rrggbb` or `#rgb`, not `{}`", a.get_ref()))
            })?),
        };
        Ok(Face {
            display_name: text(&e.display_name, "display_name", Face::MAX_NAME)?,
            greeting: text(&e.greeting, "greeting", Face::MAX_GREETING)?,
            suggestions,
            accent,
        })
    }
}

/// `#rrggbb` from `#rrggbb` or `#rgb` (lower case), or `None`.
fn hex_colour(text: &str) -> Option<String> {
    let hex = text.strip_prefix('#')?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        6 => Some(format!("#{}", hex.to_ascii_lowercase())),
        3 => Some(hex.chars().fold("#".to_string(), |mut s, c| {
            s.push(c.to_ascii_lowercase());
            s.push(c.to_ascii_lowercase());
            s
        })),
        _ => None,
    }
}

/// Per-tenant limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt + reserved completion) per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per calendar month.
    pub tokens_per_month: Option<u64>,
    /// Requests in flight at once.
    pub concurrent_requests: Option<u64>,
}

/// A tenant: a customer holding keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Tenant id (used by `seed keys create --tenant`).
    pub id: String,
    /// The one region whose store holds its data.
    pub region: String,
    /// Limits.
    pub quotas: Quotas,
    /// Editions it may use (all must be served in its region).
    pub editions: Vec<String>,
    /// Weight in the engine's fair admission (default 1).
    pub weight: u32,
}

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Regions, in file order.
    pub regions: Vec<Region>,
    /// Editions, in file order.
    pub editions: Vec<Edition>,
    /// Tenants, in file order.
    pub tenants: Vec<Tenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    keys: Option<Spanned<String>>,
    #[serde(default)]
    region: Vec<Spanned<RawRegion>>,
    #[serde(default)]
    edition: Vec<Spanned<RawEdition>>,
    #[serde(default)]
    tenant: Vec<Spanned<RawTenant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: Spanned<String>,
    store: Option<Spanned<String>>,
    store_password_env: Option<Spanned<String>>,
    model_hub: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdition {
    name: Spanned<String>,
    model: Spanned<String>,
    system: Option<String>,
    chat_template: Option<Spanned<String>>,
    language: Option<String>,
    display_name: Option<Spanned<String>>,
    greeting: Option<Spanned<String>>,
    suggestions: Option<Spanned<Vec<Spanned<String>>>>,
    accent: Option<Spanned<String>>,
    sampling: Option<Spanned<Sampling>>,
    regions: Spanned<Vec<Spanned<String>>>,
    prices: Option<Spanned<Prices>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Spanned<String>,
    region: Spanned<String>,
    quotas: Option<Spanned<Quotas>>,
    editions: Spanned<Vec<Spanned<String>>>,
    weight: Option<Spanned<u32>>,
}

impl Config {
    /// Reads and validates `path`; relative store paths resolve against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Config::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for region in &mut config.regions {
            if let Location::Sqlite(path) = &mut region.store {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let invalid = |offset: usize, message: String| ConfigError::Invalid { line: line_of(offset), message };
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            line: e.span().map_or(0, |s| line_of(s.start)),
            message: e.message().to_owned(),
        })?;

        if let Some(k) = &raw.keys {
            return Err(invalid(
                k.span().start,
                "`keys` is no longer used: API keys are kept in each region's store \
                 (`seed keys create --tenant ID` adds one there)"
                    .into(),
            ));
        }

        let mut regions = Vec::new();
        let mut names = HashSet::new();
        for r in &raw.region {
            let r = r.get_ref();
            let name = r.name.get_ref();
            check_name(name, "region").map_err(|m| invalid(r.name.span().start, m))?;
            if !names.insert(name.clone()) {
                return Err(invalid(r.name.span().start, format!("duplicate region `{name}`")));
            }
            let store = match &r.store {
                Some(s) if s.get_ref().trim().is_empty() => {
                    return Err(invalid(s.span().start, format!("region `{name}`: empty store path")))
                }
                Some(s) => {
                    let env = r.store_password_env.as_ref().map(|e| e.get_ref().as_str());
                    Location::parse(s.get_ref(), env)
                        .map_err(|m| invalid(s.span().start, format!("region `{name}`: store: {m}")))?
                }
                None => match &r.store_password_env {
                    Some(e) => {
                        return Err(invalid(
                            e.span().start,
                            format!("region `{name}`: `store_password_env` applies only to a postgres:// store"),
                        ))
                    }
                    None => Location::Sqlite(PathBuf::from(format!("seed-{name}.sqlite"))),
                },
            };
            if let Some(other) = regions.iter().find(|o: &&Region| o.store == store) {
                return Err(invalid(
                    r.name.span().start,
                    format!("region `{name}` shares its store {} with region `{}`", store.describe(), other.name),
                ));
            }
            let model_hub = match &r.model_hub {
                None => None,
                Some(h) => {
                    let v = h.get_ref().trim();
                    let lower = v.to_ascii_lowercase();
                    let url = (lower.starts_with("https://") || lower.starts_with("http://")) && v.len() > 8;
                    if !(url || v == "huggingface" || v == "modelscope") {
                        return Err(invalid(
                            h.span().start,
                            format!(
                                "region `{name}`: model_hub `{v}` is not `huggingface`, `modelscope` or an http(s) URL"
                            ),
                        ));
                    }
                    Some(v.to_string())
                }
            };
            regions.push(Region { name: name.clone(), store, model_hub });
        }

        let mut editions: Vec<Edition> = Vec::new();
        for e in &raw.edition {
            let e = e.get_ref();
            let name = e.name.get_ref();
            check_name(name, "edition").map_err(|m| invalid(e.name.span().start, m))?;
            if editions.iter().any(|o| &o.name == name) {
                return Err(invalid(e.name.span().start, format!("duplicate edition `{name}`")));
            }
            if e.model.get_ref().trim().is_empty() {
                return Err(invalid(e.model.span().start, format!("edition `{name}`: empty model")));
            }
            if e.regions.get_ref().is_empty() {
                return Err(invalid(e.regions.span().start, format!("edition `{name}` is served in no region")));
            }
            for region in e.regions.get_ref() {
                if !names.contains(region.get_ref()) {
                    return Err(invalid(
                        region.span().start,
                        format!("edition `{name}`: unknown region `{}`", region.get_ref()),
                    ));
                }
            }
            let (s, sampling_at) = spanned_or(&e.sampling, e.name.span().start);
            let bad_sampling = s.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t))
                || s.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0))
                || s.max_tokens == Some(0);
            if bad_sampling {
                return Err(invalid(
                    sampling_at,
                    format!(
                        "edition `{name}`: sampling out of range (temperature 0..=2, top_p in (0, 1], max_tokens >= 1)"
                    ),
                ));
            }
            if let Some(t) = &e.chat_template {
                if t.get_ref().trim().is_empty() {
                    return Err(invalid(t.span().start, format!("edition `{name}`: empty chat_template")));
                }
            }
            let (p, prices_at) = spanned_or(&e.prices, e.name.span().start);
            if [p.input, p.cached, p.output].iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(invalid(prices_at, format!("edition `{name}`: prices must be finite and non-negative")));
            }
            let face = Face::from_raw(e).map_err(|(at, m)| invalid(at, format!("edition `{name}`: {m}")))?;
            editions.push(Edition {
                name: name.clone(),
                face,
                model: e.model.get_ref().clone(),
                system: e.system.clone(),
                chat_template: e.chat_template.as_ref().map(|t| t.get_ref().clone()),
                language: e.language.clone(),
                sampling: s,
                regions: e.regions.get_ref().iter().map(|r| r.get_ref().clone()).collect(),
                prices: p,
            });
        }

        let mut tenants: Vec<Tenant> = Vec::new();
        for t in &raw.tenant {
            let t = t.get_ref();
            let id = t.id.get_ref();
            check_name(id, "tenant").map_err(|m| invalid(t.id.span().start, m))?;
            if tenants.iter().any(|o| &o.id == id) {
                return Err(invalid(t.id.span().start, format!("duplicate tenant `{id}`")));
            }
            let region = t.region.get_ref();
            if !names.contains(region) {
                return Err(invalid(t.region.span().start, format!("tenant `{id}`: unknown region `{region}`")));
            }
            if t.editions.get_ref().is_empty() {
                return Err(invalid(t.editions.span().start, format!("tenant `{id}` is allowed no edition")));
            }
            for ed in t.editions.get_ref() {
                let Some(edition) = editions.iter().find(|e| &e.name == ed.get_ref()) else {
                    return Err(invalid(ed.span().start, format!("tenant `{id}`: unknown edition `{}`", ed.get_ref())));
                };
                if !edition.regions.contains(region) {
                    return Err(invalid(
                        ed.span().start,
                        format!("tenant `{id}` (region `{region}`) is allowed edition `{}`, which is not served in `{region}`", edition.name),
                    ));
                }
            }
            let (q, quotas_at) = spanned_or(&t.quotas, t.id.span().start);
            let zero = [
                ("requests_per_minute", q.requests_per_minute),
                ("tokens_per_minute", q.tokens_per_minute),
                ("tokens_per_month", q.tokens_per_month),
                ("concurrent_requests", q.concurrent_requests),
            ]
            .into_iter()
            .find(|(_, v)| *v == Some(0));
            if let Some((field, _)) = zero {
                return Err(invalid(quotas_at, format!("tenant `{id}`: quota {field} = 0 admits nothing")));
            }
            if let (Some(minute), Some(month)) = (q.tokens_per_minute, q.tokens_per_month) {
                if minute > month {
                    return Err(invalid(
                        quotas_at,
                        format!("tenant `{id}`: tokens_per_minute ({minute}) exceeds tokens_per_month ({month})"),
                    ));
                }
            }
            let weight = match &t.weight {
                Some(w) if *w.get_ref() == 0 => {
                    return Err(invalid(w.span().start, format!("tenant `{id}`: weight must be at least 1")))
                }
                Some(w) => *w.get_ref(),
                None => 1,
            };
            tenants.push(Tenant {
                id: id.clone(),
                region: region.clone(),
                quotas: q,
                editions: t.editions.get_ref().iter().map(|e| e.get_ref().clone()).collect(),
                weight,
            });
        }
        Ok(Config { regions, editions, tenants })
    }

    /// The edition named `name`.
    pub fn edition(&self, name: &str) -> Option<&Edition> {
        self.editions.iter().find(|e| e.name == name)
    }

    /// The tenant with id `id`.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// The region named `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The part of the configuration one region's servers run: that region, its tenants, and
    /// the editions served in it (each listing only this region). A replica started for one
    /// region opens no other region's store and knows no other region's tenants or keys.
    pub fn only_region(&self, name: &str) -> Option<Config> {
        let region = self.region(name)?.clone();
        let editions = self
            .editions
            .iter()
            .filter(|e| e.regions.iter().any(|r| r == name))
            .map(|e| Edition { regions: vec![name.to_string()], ..e.clone() })
            .collect();
        let tenants = self.tenants.iter().filter(|t| t.region == name).cloned().collect();
        Some(Config { regions: vec![region], editions, tenants })
    }

    /// Whether `tenant` may use `edition`: allowed to it and served in its region.
    pub fn may_use(&self, tenant: &Tenant, edition: &str) -> bool {
        tenant.editions.iter().any(|e| e == edition)
            && self.edition(edition).is_some_and(|e| e.regions.contains(&tenant.region))
    }
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} name `{name}` must be 1-64 characters of ASCII letters, digits, `-`, `_` or `.`"))
    }
}

/// The value (or its default) and where to point an error about it.
fn spanned_or<T: Copy + Default>(value: &Option<Spanned<T>>, fallback: usize) -> (T, usize) {
    match value {
        Some(v) => (*v.get_ref(), v.span().start),
        None => (T::default(), fallback),
    }
}
