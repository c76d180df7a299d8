//! What a user types to name a model on a hub, parsed.
//!
//! The forms are Ollama's and llama.cpp's:
//!
//! | typed | meaning |
//! |---|---|
//! | `hf.co/OWNER/REPO` | the repository's Q4_K_M `.gguf` (or its only one) |
//! | `hf.co/OWNER/REPO:Q8_0` | the repository's `.gguf` of that quantization |
//! | `hf.co/OWNER/REPO/DIR/FILE.gguf` | that file |
//! | `modelscope.cn/OWNER/REPO[:QUANT]`, `…/FILE.gguf` | the same on ModelScope |
//! | `https://huggingface.co/OWNER/REPO/resolve/REV/FILE.gguf` | a hub file at a revision |
//! | `https://HOST/PATH/FILE.gguf[#sha256=HEX]` | any URL (checked against the sha256 when given) |
//!
//! `huggingface.co/` is accepted for `hf.co/`. Names are checked here, once, so that
//! nothing typed can reach outside the cache folder when it becomes a path.

use std::fmt;

use anyhow::{bail, Context};

/// The two hubs Seed reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hub {
    /// Hugging Face (or a mirror of its API).
    HuggingFace,
    /// ModelScope.
    ModelScope,
}

impl Hub {
    /// The short host users type, also the cache folder of the hub's models.
    pub fn host(self) -> &'static str {
        match self {
            Hub::HuggingFace => "hf.co",
            Hub::ModelScope => "modelscope.cn",
        }
    }

    /// The branch a reference without a revision means.
    pub fn default_revision(self) -> &'static str {
        match self {
            Hub::HuggingFace => "main",
            Hub::ModelScope => "master",
        }
    }
}

/// A repository on a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// Which hub's namespace the name is in.
    pub hub: Hub,
    /// The owner (user or organisation).
    pub owner: String,
    /// The repository name.
    pub name: String,
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.hub.host(), self.owner, self.name)
    }
}

/// A parsed model reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A repository and a quantization to pick (`None`: Q4_K_M, or the only one there is).
    Quant {
        /// The repository.
        repo: Repo,
        /// The quantization tag as typed (matched without regard to case).
        quant: Option<String>,
    },
    /// One file of a repository.
    File {
        /// The repository.
        repo: Repo,
        /// Branch, tag or commit (`None`: the hub's default branch).
        revision: Option<String>,
        /// Path of the file inside the repository.
        path: String,
    },
    /// A file at a URL that is not a hub's.
    Url {
        /// The URL without its fragment.
        url: String,
        /// The sha256 the fragment `#sha256=HEX` gave, lowercase.
        sha256: Option<String>,
    },
}

impl Reference {
    /// Parses `text`: `None` when it is not a hub reference or URL at all (a path or a
    /// catalogue name), an error when it is one but malformed.
    pub fn parse(text: &str) -> Option<anyhow::Result<Reference>> {
        let lower = text.to_ascii_lowercase();
        for (prefix, hub) in
            [("hf.co/", Hub::HuggingFace), ("huggingface.co/", Hub::HuggingFace), ("modelscope.cn/", Hub::ModelScope)]
        {
            if lower.starts_with(prefix) {
                return Some(parse_hub(hub, &text[prefix.len()..]).with_context(|| bad(text)));
            }
        }
        if lower.starts_with("https://") || lower.starts_with("http://") {
            return Some(parse_url(text).with_context(|| bad(text)));
        }
        None
    }
}

fn bad(text: &str) -> String {
    format!(
        "cannot read the model reference `{text}` (forms: hf.co/OWNER/REPO[:QUANT], \
         hf.co/OWNER/REPO/FILE.gguf, modelscope.cn/OWNER/REPO[:QUANT], https://…/FILE.gguf)"
    )
}

/// `OWNER/REPO[:QUANT]` or `OWNER/REPO/PATH.gguf`.
fn parse_hub(hub: Hub, rest: &str) -> anyhow::Result<Reference> {
    let (owner, rest) = rest.split_once('/').context("no repository name after the owner")?;
    check_name(owner, "owner")?;
    match rest.split_once('/') {
        Some((name, path)) => {
            check_name(name, "repository")?;
            let repo = Repo { hub, owner: owner.to_string(), name: name.to_string() };
            Ok(Reference::File { repo, revision: None, path: check_path(path)? })
        }
        None => {
            let (name, quant) = match rest.split_once(':') {
                Some((name, quant)) => (name, Some(quant)),
                None => (rest, None),
            };
            check_name(name, "repository")?;
            if let Some(q) = quant {
                if q.is_empty() || !q.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
                    bail!("the quantization `{q}` is not a tag like Q4_K_M");
                }
            }
            let repo = Repo { hub, owner: owner.to_string(), name: name.to_string() };
            Ok(Reference::Quant { repo, quant: quant.map(str::to_string) })
        }
    }
}

/// A URL; a hub's own `…/resolve/REV/PATH` (or `blob`) URL becomes a [`Reference::File`].
fn parse_url(text: &str) -> anyhow::Result<Reference> {
    let (url, fragment) = match text.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (text, None),
    };
    let sha256 = match fragment {
        None => None,
        Some(f) => {
            let hex = f.strip_prefix("sha256=").context("the only URL fragment understood is #sha256=HEX")?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("#sha256= needs 64 hexadecimal digits");
            }
            Some(hex.to_ascii_lowercase())
        }
    };
    let (scheme, rest) = url.split_once("://").context("no scheme")?;
    let (host, path) = rest.split_once('/').context("no path after the host")?;
    if host.is_empty() || host.contains(['@', ' ']) {
        bail!("the host `{host}` is not understood");
    }
    let path = path.split(['?']).next().unwrap_or_default();
    let hub = match host.to_ascii_lowercase().as_str() {
        "huggingface.co" | "hf.co" => Some((Hub::HuggingFace, path)),
        "modelscope.cn" | "www.modelscope.cn" => path.strip_prefix("models/").map(|p| (Hub::ModelScope, p)),
        _ => None,
    };
    if let Some((hub, p)) = hub {
        let parts: Vec<&str> = p.splitn(5, '/').collect();
        if let [owner, name, "resolve" | "blob", revision, file] = parts[..] {
            check_name(owner, "owner")?;
            check_name(name, "repository")?;
            check_name(revision, "revision")?;
            let repo = Repo { hub, owner: owner.to_string(), name: name.to_string() };
            return Ok(Reference::File { repo, revision: Some(revision.to_string()), path: check_path(file)? });
        }
    }
    let _ = scheme;
    check_path(path)?;
    Ok(Reference::Url { url: url.to_string(), sha256 })
}

/// An owner, repository or revision name: letters, digits, `-`, `_`, `.`, not `.`/`..`.
fn check_name(name: &str, what: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 96
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!("`{name}` is not a valid {what} name");
    }
    Ok(())
}

/// A file path inside a repository (or a URL's path): `/`-separated parts, none empty,
/// `.` or `..`, no backslash or control character, ending in `.gguf`.
pub(crate) fn check_path(path: &str) -> anyhow::Result<String> {
    let parts_ok = path.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    let chars_ok = !path.chars().any(|c| c == '\\' || c.is_control());
    if !parts_ok || !chars_ok {
        bail!("`{path}` is not a file path inside a repository");
    }
    if !path.to_ascii_lowercase().ends_with(".gguf") {
        bail!("`{path}` is not a .gguf file");
    }
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(hub: Hub, owner: &str, name: &str) -> Repo {
        Repo { hub, owner: owner.into(), name: name.into() }
    }

    fn parse(text: &str) -> Reference {
        Reference::parse(text).expect("a reference").unwrap_or_else(|e| panic!("{text}: {e:#}"))
    }

    #[test]
    fn every_form_is_read() {
        let r = repo(Hub::HuggingFace, "bartowski", "Qwen3-8B-GGUF");
        assert_eq!(parse("hf.co/bartowski/Qwen3-8B-GGUF"), Reference::Quant { repo: r.clone(), quant: None });
        assert_eq!(
            parse("huggingface.co/bartowski/Qwen3-8B-GGUF:q8_0"),
            Reference::Quant { repo: r.clone(), quant: Some("q8_0".into()) }
        );
        assert_eq!(
            parse("hf.co/bartowski/Qwen3-8B-GGUF/Q4_K_M/a-00001-of-00002.gguf"),
            Reference::File { repo: r.clone(), revision: None, path: "Q4_K_M/a-00001-of-00002.gguf".into() }
        );
        assert_eq!(
            parse("https://huggingface.co/bartowski/Qwen3-8B-GGUF/resolve/main/x.gguf?download=true"),
            Reference::File { repo: r, revision: Some("main".into()), path: "x.gguf".into() }
        );
        assert_eq!(
            parse("modelscope.cn/Qwen/Qwen3-8B-GGUF:Q4_K_M"),
            Reference::Quant { repo: repo(Hub::ModelScope, "Qwen", "Qwen3-8B-GGUF"), quant: Some("Q4_K_M".into()) }
        );
        let sha = "AB".repeat(32);
        assert_eq!(
            parse(&format!("http://127.0.0.1:8080/m/x.gguf#sha256={sha}")),
            Reference::Url { url: "http://127.0.0.1:8080/m/x.gguf".into(), sha256: Some("ab".repeat(32)) }
        );
    }

    #[test]
    fn paths_and_catalogue_names_are_not_references() {
        for text in ["smollm2-135m-instruct", "models/x.gguf", "/tmp/hf.co/x.gguf", "./hf.co/a/b"] {
            assert!(Reference::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn malformed_references_are_explained() {
        for (text, needle) in [
            ("hf.co/owner", "no repository name"),
            ("hf.co/../etc:Q4", "not a valid owner"),
            ("hf.co/a/b/../../x.gguf", "not a file path"),
            ("hf.co/a/b/c//x.gguf", "not a file path"),
            ("hf.co/a/b/x.bin", "not a .gguf"),
            ("hf.co/a/b:", "not a tag"),
            ("hf.co/a/b:Q4 K", "not a tag"),
            ("https://x.org/a.gguf#md5=00", "#sha256="),
            ("https://x.org/a.gguf#sha256=00", "64 hexadecimal"),
            ("https://x.org", "no path"),
        ] {
            let err = format!("{:#}", Reference::parse(text).expect("a reference").unwrap_err());
            assert!(err.contains(needle) && err.contains(text), "{text}: {err}");
        }
    }
}
