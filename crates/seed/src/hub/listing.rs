//! A repository's files, as the hubs' APIs list them, and the choice of one model in them.
//!
//! - Hugging Face: `GET {endpoint}/api/models/{owner}/{repo}/tree/{revision}?recursive=true`
//!   answers a JSON array of `{"type": "file"|"directory", "path", "size", "oid",
//!   "lfs": {"oid": SHA256, "size", "pointerSize"}}` (pages linked by a `Link: <…>;
//!   rel="next"` header); a file's bytes are at `{endpoint}/{owner}/{repo}/resolve/{revision}/{path}`
//!   (usually a redirect to a storage host). Large files are LFS files, and their `lfs.oid`
//!   is the sha256 of their content.
//! - ModelScope: `GET {endpoint}/api/v1/models/{owner}/{repo}/repo/files?Revision={revision}&Recursive=true`
//!   answers `{"Code": 200, "Data": {"Files": [{"Type": "blob"|"tree", "Path", "Name",
//!   "Size", "Sha256"}]}}`; the bytes are at `{endpoint}/models/{owner}/{repo}/resolve/{revision}/{path}`.

use anyhow::{bail, Context};
use serde_json::Value;

use super::http::{Client, Purpose};
use super::reference::check_path;
use super::split;
use super::{Api, Endpoint};

/// One file of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path inside the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content, lowercase hex, when the hub lists it.
    pub sha256: Option<String>,
}

/// The quantization a reference without one means.
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// Lists the `.gguf` files of `owner/name` at `revision`.
pub fn list(
    client: &Client,
    endpoint: &Endpoint,
    owner: &str,
    name: &str,
    revision: &str,
    purpose: &Purpose<'_>,
) -> anyhow::Result<Vec<RemoteFile>> {
    let base = endpoint.base.trim_end_matches('/');
    let mut files = Vec::new();
    match endpoint.api {
        Api::HuggingFace => {
            let mut url = Some(format!("{base}/api/models/{owner}/{name}/tree/{revision}?recursive=true"));
            let mut pages = 0;
            while let Some(u) = url.take() {
                pages += 1;
                if pages > 1000 {
                    bail!("the file list of {} does not end", purpose.what);
                }
                let (json, next) = client.get_json(&u, purpose)?;
                let items = json.as_array().with_context(|| format!("the file list from {u} is not a JSON array"))?;
                for item in items {
                    if item.get("type").and_then(Value::as_str) != Some("file") {
                        continue;
                    }
                    let path = str_field(item, "path", &u)?;
                    let lfs = item.get("lfs");
                    let size = lfs.and_then(|l| l.get("size")).or_else(|| item.get("size")).and_then(Value::as_u64);
                    let sha256 = lfs.and_then(|l| l.get("oid")).and_then(Value::as_str).map(str::to_ascii_lowercase);
                    push_gguf(&mut files, path, size, sha256, &u)?;
                }
                url = next;
            }
        }
        Api::ModelScope => {
            let u = format!("{base}/api/v1/models/{owner}/{name}/repo/files?Revision={revision}&Recursive=true");
            let (json, _) = client.get_json(&u, purpose)?;
            if let Some(code) = json.get("Code").and_then(Value::as_u64).filter(|&c| c != 200) {
                let message = json.get("Message").and_then(Value::as_str).unwrap_or("");
                bail!("ModelScope answered code {code} for {}: {message}", purpose.what);
            }
            let items = json
                .pointer("/Data/Files")
                .and_then(Value::as_array)
                .with_context(|| format!("the file list from {u} has no Data.Files array"))?;
            for item in items {
                if item.get("Type").and_then(Value::as_str) == Some("tree") {
                    continue;
                }
                let path = str_field(item, "Path", &u)?;
                let size = item.get("Size").and_then(Value::as_u64);
                let sha256 =
                    item.get("Sha256").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase);
                push_gguf(&mut files, path, size, sha256, &u)?;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn str_field<'a>(item: &'a Value, key: &str, url: &str) -> anyhow::Result<&'a str> {
    item.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("an entry of the file list from {url} has no `{key}`"))
}

/// Keeps `.gguf` files (not multimodal projectors); checks the path and the checksum's form.
fn push_gguf(
    files: &mut Vec<RemoteFile>,
    path: &str,
    size: Option<u64>,
    sha256: Option<String>,
    url: &str,
) -> anyhow::Result<()> {
    let lower = path.to_ascii_lowercase();
    if !lower.ends_with(".gguf") || lower.rsplit('/').next().is_some_and(|f| f.contains("mmproj")) {
        return Ok(());
    }
    let path = check_path(path).with_context(|| format!("the file list from {url} names a bad path"))?;
    let size = size.with_context(|| format!("the file list from {url} gives no size for {path}"))?;
    if let Some(s) = &sha256 {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the file list from {url} gives a malformed sha256 for {path}");
        }
    }
    files.push(RemoteFile { path, size, sha256 });
    Ok(())
}

/// Whether `path` carries the quantization tag `quant`: the tag, in any case, between
/// characters that cannot be part of a tag (so `Q4_K` does not match `Q4_K_M`).
pub fn has_quant(path: &str, quant: &str) -> bool {
    let hay = path.to_ascii_uppercase();
    let needle = quant.to_ascii_uppercase();
    let is_tag_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = hay.as_bytes();
    hay.match_indices(&needle).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + needle.len()).copied();
        !before.is_some_and(is_tag_char) && !after.is_some_and(is_tag_char)
    })
}

/// The model `quant` names among `files`: one file, or the parts of one split model in
/// order. Without a tag: Q4_K_M, else the only model there is. Among several matches the
/// shortest name wins (`x-Q4_K_M.gguf` over `x-UD-Q4_K_M.gguf`), then the first by name.
pub fn choose(files: &[RemoteFile], quant: Option<&str>, what: &str) -> anyhow::Result<Vec<RemoteFile>> {
    let models = group(files)?;
    if models.is_empty() {
        bail!("{what} has no .gguf file");
    }
    let wanted = quant.unwrap_or(DEFAULT_QUANT);
    let mut matching: Vec<&Vec<RemoteFile>> = models.iter().filter(|m| has_quant(&m[0].path, wanted)).collect();
    if matching.is_empty() && quant.is_none() && models.len() == 1 {
        matching.push(&models[0]);
    }
    matching.sort_by_key(|m| (m[0].path.len(), m[0].path.clone()));
    match matching.first() {
        Some(m) => Ok(m.to_vec()),
        None => {
            let list: Vec<String> = models
                .iter()
                .map(|m| {
                    let size: u64 = m.iter().map(|f| f.size).sum();
                    let parts = if m.len() > 1 { format!(", {} parts", m.len()) } else { String::new() };
                    format!("{} ({:.0} MB{parts})", m[0].path, size as f64 / 1e6)
                })
                .collect();
            bail!("{what} has no {wanted} file; it has: {}", list.join(", "))
        }
    }
}

/// The repository's models: single files, and split models gathered part by part (each
/// complete, in order).
fn group(files: &[RemoteFile]) -> anyhow::Result<Vec<Vec<RemoteFile>>> {
    let mut models: Vec<Vec<RemoteFile>> = Vec::new();
    for f in files {
        match split::part_of(&f.path) {
            None => models.push(vec![f.clone()]),
            Some(part) if part.index == 1 => {
                let mut parts = vec![f.clone()];
                for i in 2..=part.count {
                    let name = part.name_of(i);
                    let p = files
                        .iter()
                        .find(|g| g.path == name)
                        .with_context(|| format!("{} is part 1 of {} but {name} is missing", f.path, part.count))?;
                    parts.push(p.clone());
                }
                models.push(parts);
            }
            Some(_) => {}
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> RemoteFile {
        RemoteFile { path: path.into(), size, sha256: None }
    }

    #[test]
    fn tags_match_whole() {
        assert!(has_quant("Qwen3-8B-Q4_K_M.gguf", "q4_k_m"));
        assert!(has_quant("Q4_K_M/Qwen3-8B-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"));
        assert!(has_quant("model.Q8_0.gguf", "Q8_0"));
        assert!(has_quant("gemma-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"));
        assert!(!has_quant("Qwen3-8B-Q4_K_M.gguf", "Q4_K"));
        assert!(!has_quant("Qwen3-8B-IQ4_XS.gguf", "Q4_XS"));
        assert!(!has_quant("Qwen3-8B-Q4_K_M.gguf", "K_M"));
    }

    #[test]
    fn the_right_model_is_chosen() {
        let files = vec![
            file("x-Q8_0.gguf", 8),
            file("x-UD-Q4_K_M.gguf", 5),
            file("x-Q4_K_M.gguf", 4),
            file("big/x-F16-00001-of-00002.gguf", 10),
            file("big/x-F16-00002-of-00002.gguf", 6),
        ];
        assert_eq!(choose(&files, None, "r").unwrap(), vec![files[2].clone()]);
        assert_eq!(choose(&files, Some("q8_0"), "r").unwrap(), vec![files[0].clone()]);
        assert_eq!(choose(&files, Some("F16"), "r").unwrap(), vec![files[3].clone(), files[4].clone()]);
        let err = choose(&files, Some("Q2_K"), "hf.co/a/b").unwrap_err().to_string();
        assert!(err.contains("no Q2_K file") && err.contains("x-Q8_0.gguf") && err.contains("2 parts"), "{err}");

        // Without a tag and without Q4_K_M, the only model there is.
        let one = vec![file("m-Q8_0.gguf", 1)];
        assert_eq!(choose(&one, None, "r").unwrap(), one);
        let two = vec![file("m-Q8_0.gguf", 1), file("m-F16.gguf", 2)];
        assert!(choose(&two, None, "r").unwrap_err().to_string().contains("no Q4_K_M file"));

        // A split model with a part missing from the list is an error, not half a model.
        let broken = vec![file("y-00001-of-00003.gguf", 1), file("y-00002-of-00003.gguf", 1)];
        assert!(choose(&broken, None, "r").unwrap_err().to_string().contains("y-00003-of-00003.gguf is missing"));
        assert!(choose(&[], None, "r").unwrap_err().to_string().contains("no .gguf"));
    }
}
