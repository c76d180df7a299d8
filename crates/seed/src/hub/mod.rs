//! Models straight from the hubs: `hf.co/OWNER/REPO[:QUANT]`, `modelscope.cn/…`, a file in a
//! repository, or any `https://…/FILE.gguf` (see [`reference`] for the forms).
//!
//! A pull lists the repository through the hub's API (each file with its size and LFS
//! sha256, see [`listing`]), picks the model, downloads it resumably and verified
//! ([`download`]), joins a split model into one file ([`split`]), and keeps it under
//! `$SEED_HOME/models/<hub>/<owner>/<repo>/<path>`. What is in the cache is used without
//! asking the hub again, so a pulled model runs offline.
//!
//! Where the hubs are: `HF_ENDPOINT` (a mirror of Hugging Face's API, default
//! `https://huggingface.co`) and `MODELSCOPE_ENDPOINT` (default `https://modelscope.cn`);
//! a region of `seed.toml` can send its `hf.co/…` references elsewhere ([`Sources::for_region`]).
//! Tokens: `HF_TOKEN` (else the file `huggingface-cli login` writes) and
//! `MODELSCOPE_API_TOKEN`, each sent to its own hub's host only.

pub mod download;
pub mod http;
pub mod listing;
pub mod reference;
pub mod split;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::ProgressBar;

use self::download::Expected;
use self::http::{Client, Purpose};
use self::listing::RemoteFile;
pub use self::reference::{Hub, Reference, Repo};

/// Which API an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Hugging Face's (also its mirrors').
    HuggingFace,
    /// ModelScope's.
    ModelScope,
}

/// A hub's address and API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Which API it speaks.
    pub api: Api,
    /// Its base URL, e.g. `https://huggingface.co`.
    pub base: String,
}

/// Where each hub's references are fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// For `hf.co/…` references.
    pub huggingface: Endpoint,
    /// For `modelscope.cn/…` references.
    pub modelscope: Endpoint,
}

impl Sources {
    /// The hubs as the environment names them (`HF_ENDPOINT`, `MODELSCOPE_ENDPOINT`), else
    /// their public addresses.
    pub fn from_env() -> Sources {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Sources {
            huggingface: Endpoint {
                api: Api::HuggingFace,
                base: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            },
            modelscope: Endpoint {
                api: Api::ModelScope,
                base: var("MODELSCOPE_ENDPOINT").unwrap_or_else(|| "https://modelscope.cn".into()),
            },
        }
    }

    /// The hubs for a region whose `model_hub` is `hub`: `huggingface` (as the environment
    /// says), `modelscope` (its `hf.co/OWNER/REPO` references are fetched from the
    /// repository of the same name on ModelScope, where the large GGUF publishers mirror
    /// theirs), or the URL of a mirror of Hugging Face's API.
    pub fn for_region(hub: Option<&str>) -> anyhow::Result<Sources> {
        let mut sources = Sources::from_env();
        match hub {
            None | Some("huggingface") => {}
            Some("modelscope") => sources.huggingface = sources.modelscope.clone(),
            Some(url) => {
                http::check_scheme(url).context("model_hub is `huggingface`, `modelscope` or a mirror's URL")?;
                sources.huggingface = Endpoint { api: Api::HuggingFace, base: url.trim_end_matches('/').to_string() };
            }
        }
        Ok(sources)
    }

    fn endpoint(&self, hub: Hub) -> &Endpoint {
        match hub {
            Hub::HuggingFace => &self.huggingface,
            Hub::ModelScope => &self.modelscope,
        }
    }
}

/// The cached file for `reference`, pulling it first when it is not there.
pub fn resolve(reference: &Reference, sources: &Sources) -> anyhow::Result<PathBuf> {
    match reference {
        Reference::Quant { repo, quant } => {
            if let Some(path) = cached_quant(repo, quant.as_deref())? {
                return Ok(path);
            }
            let remote = Remote::new(repo, None, sources);
            let files = remote.list()?;
            let chosen = listing::choose(&files, quant.as_deref(), &repo.to_string())?;
            let path = remote.fetch(&chosen)?;
            if quant.is_none() {
                // What the reference without a tag means, for the next run without the network.
                let dir = repo_dir(repo, None)?;
                if let Ok(rel) = path.strip_prefix(&dir) {
                    let _ = std::fs::write(dir.join(DEFAULT_FILE), rel.to_string_lossy().as_bytes());
                }
            }
            Ok(path)
        }
        Reference::File { repo, revision, path } => {
            let remote = Remote::new(repo, revision.as_deref(), sources);
            let wanted = split::part_of(path).map_or_else(|| path.clone(), |p| p.joined_name());
            let dest = remote.dir()?.join(&wanted);
            if dest.is_file() {
                return Ok(dest);
            }
            let files = remote.list()?;
            let chosen: Vec<RemoteFile> = match split::part_of(path) {
                None => files.iter().filter(|f| f.path == *path).cloned().collect(),
                Some(part) => {
                    (1..=part.count).filter_map(|i| files.iter().find(|f| f.path == part.name_of(i)).cloned()).collect()
                }
            };
            let complete = split::part_of(path).map_or(1, |p| p.count as usize);
            if chosen.len() != complete {
                let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                bail!("{repo} has no file {path}; its .gguf files: {}", names.join(", "));
            }
            remote.fetch(&chosen)
        }
        Reference::Url { url, sha256 } => {
            let after = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let (host, path) = after.split_once('/').context("no path in the URL")?;
            let host = host.replace(':', "_");
            reference::check_path(path)?;
            let dest = models_dir()?.join("url").join(host).join(path);
            if dest.is_file() {
                return Ok(dest);
            }
            let client = Client::new(url, None);
            let purpose = Purpose { what: url, page: None, token_var: "the URL's access", endpoint_var: None };
            let label = path.rsplit('/').next().unwrap_or(path);
            let expected = Expected { size: None, sha256: sha256.clone() };
            download::fetch(&client, url, &dest, &expected, label, &purpose)?;
            Ok(dest)
        }
    }
}

/// `$SEED_HOME/models`.
pub fn models_dir() -> anyhow::Result<PathBuf> {
    Ok(crate::catalogue::seed_home()?.join("models"))
}

/// The folder of `repo`'s files at `revision` (`None`: the default branch).
fn repo_dir(repo: &Repo, revision: Option<&str>) -> anyhow::Result<PathBuf> {
    let name = match revision {
        Some(rev) if rev != repo.hub.default_revision() => format!("{}@{rev}", repo.name),
        _ => repo.name.clone(),
    };
    Ok(models_dir()?.join(repo.hub.host()).join(&repo.owner).join(name))
}

/// The file in a repository's cache folder that names the model its reference without a tag
/// resolved to (Q4_K_M, or the only model when there was none).
const DEFAULT_FILE: &str = ".default";

/// A cached model of `repo` that carries `quant` (default Q4_K_M), chosen as
/// [`listing::choose`] would; without a tag, also the model an earlier pull chose.
fn cached_quant(repo: &Repo, quant: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    let dir = repo_dir(repo, None)?;
    if quant.is_none() {
        let named = fs::read_to_string(dir.join(DEFAULT_FILE)).ok();
        let rel = named.as_deref().map(str::trim).filter(|r| reference::check_path(r).is_ok());
        if let Some(path) = rel.map(|r| dir.join(r)).filter(|p| p.is_file()) {
            return Ok(Some(path));
        }
    }
    let wanted = quant.unwrap_or(listing::DEFAULT_QUANT);
    let mut found: Vec<String> = gguf_files(&dir)
        .into_iter()
        .filter(|rel| split::part_of(rel).is_none() && listing::has_quant(rel, wanted))
        .collect();
    found.sort_by_key(|rel| (rel.len(), rel.clone()));
    Ok(found.first().map(|rel| dir.join(rel)))
}

/// The `.gguf` files under `dir`, as `/`-separated paths relative to it.
fn gguf_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push((e.path(), path)),
                Ok(t) if t.is_file() && name.to_ascii_lowercase().ends_with(".gguf") => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Every model pulled from a hub or URL: its reference and its file.
pub fn pulled() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let models = models_dir()?;
    let mut out = Vec::new();
    for host in [Hub::HuggingFace.host(), Hub::ModelScope.host(), "url"] {
        let dir = models.join(host);
        for rel in gguf_files(&dir) {
            if split::part_of(&rel).is_none() {
                let shown = if host == "url" { rel.clone() } else { format!("{host}/{rel}") };
                out.push((shown, dir.join(&rel)));
            }
        }
    }
    Ok(out)
}

/// A repository at a revision, with the client and words for its requests.
struct Remote<'a> {
    repo: &'a Repo,
    revision: String,
    pinned: Option<&'a str>,
    endpoint: Endpoint,
    client: Client,
    what: String,
    page: String,
    token_var: &'static str,
    endpoint_var: &'static str,
}

impl<'a> Remote<'a> {
    fn new(repo: &'a Repo, revision: Option<&'a str>, sources: &Sources) -> Remote<'a> {
        let endpoint = sources.endpoint(repo.hub).clone();
        let (token, token_var, endpoint_var) = match endpoint.api {
            Api::HuggingFace => (http::huggingface_token(), "HF_TOKEN", "HF_ENDPOINT"),
            Api::ModelScope => {
                (http::token_from(&["MODELSCOPE_API_TOKEN"]), "MODELSCOPE_API_TOKEN", "MODELSCOPE_ENDPOINT")
            }
        };
        let base = endpoint.base.trim_end_matches('/').to_string();
        let page = match endpoint.api {
            Api::HuggingFace => format!("{base}/{}/{}", repo.owner, repo.name),
            Api::ModelScope => format!("{base}/models/{}/{}", repo.owner, repo.name),
        };
        let default = match endpoint.api {
            Api::HuggingFace => "main",
            Api::ModelScope => "master",
        };
        Remote {
            repo,
            revision: revision.unwrap_or(default).to_string(),
            pinned: revision,
            client: Client::new(&base, token),
            endpoint,
            what: repo.to_string(),
            page,
            token_var,
            endpoint_var,
        }
    }

    fn purpose(&self) -> Purpose<'_> {
        Purpose {
            what: &self.what,
            page: Some(&self.page),
            token_var: self.token_var,
            endpoint_var: Some(self.endpoint_var),
        }
    }

    fn dir(&self) -> anyhow::Result<PathBuf> {
        repo_dir(self.repo, self.pinned)
    }

    fn list(&self) -> anyhow::Result<Vec<RemoteFile>> {
        listing::list(&self.client, &self.endpoint, &self.repo.owner, &self.repo.name, &self.revision, &self.purpose())
    }

    fn url_of(&self, path: &str) -> String {
        let base = self.endpoint.base.trim_end_matches('/');
        let (owner, name, rev, path) = (&self.repo.owner, &self.repo.name, &self.revision, encode_path(path));
        match self.endpoint.api {
            Api::HuggingFace => format!("{base}/{owner}/{name}/resolve/{rev}/{path}"),
            Api::ModelScope => format!("{base}/models/{owner}/{name}/resolve/{rev}/{path}"),
        }
    }

    /// Downloads `files` (one model, or a split model's parts in order); returns the model's path.
    fn fetch(&self, files: &[RemoteFile]) -> anyhow::Result<PathBuf> {
        let dir = self.dir()?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        eprintln!(
            "pulling {}:{} ({:.0} MB{})",
            self.what,
            files[0].path,
            total as f64 / 1e6,
            if files.len() > 1 { format!(", {} parts", files.len()) } else { String::new() }
        );
        for f in files {
            let expected = Expected { size: Some(f.size), sha256: f.sha256.clone() };
            let label = f.path.rsplit('/').next().unwrap_or(&f.path);
            download::fetch(
                &self.client,
                &self.url_of(&f.path),
                &dir.join(&f.path),
                &expected,
                label,
                &self.purpose(),
            )?;
        }
        let Some(part) = split::part_of(&files[0].path).filter(|_| files.len() > 1) else {
            return Ok(dir.join(&files[0].path));
        };
        let joined = dir.join(part.joined_name());
        let lock_path = dir.join(format!(".{}.lock", part.joined_name().replace('/', "_")));
        let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        if !joined.is_file() {
            let parts: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.path)).collect();
            let tmp = download::partial_path(&joined);
            eprintln!("joining {} parts into {}", parts.len(), joined.display());
            let bar = ProgressBar::new(total);
            let result = split::join(&parts, &tmp, &mut |n| bar.set_position(n))
                .and_then(|()| fs::rename(&tmp, &joined).context("moving the joined model into place"));
            bar.finish_and_clear();
            if let Err(e) = result {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            for p in &parts {
                let _ = fs::remove_file(p);
            }
        }
        let _ = fs::remove_file(&lock_path);
        Ok(joined)
    }
}

/// Percent-encodes what a URL path may not hold as it is (keeps `/`).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_hubs() {
        let default = Sources::for_region(None).unwrap();
        let ms = Sources::for_region(Some("modelscope")).unwrap();
        assert_eq!(ms.huggingface.api, Api::ModelScope);
        assert_eq!(ms.modelscope, default.modelscope);
        let mirror = Sources::for_region(Some("https://mirror.example/")).unwrap();
        assert_eq!(mirror.huggingface, Endpoint { api: Api::HuggingFace, base: "https://mirror.example".into() });
        assert!(Sources::for_region(Some("ftp://x")).is_err());
        assert_eq!(encode_path("a b/Q4_K_M.gguf"), "a%20b/Q4_K_M.gguf");
    }
}
