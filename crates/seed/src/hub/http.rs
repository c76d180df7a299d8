//! The HTTP side: one agent, the hubs' tokens, and their error answers in words.
//!
//! Hugging Face says why it refused in an `X-Error-Code` header (`RepoNotFound`,
//! `GatedRepo`, `EntryNotFound`, `RevisionNotFound`); it answers 401 rather than 404
//! for a repository an anonymous caller cannot see, private or absent. Each becomes a
//! message that says what to do.

use std::time::Duration;

use anyhow::bail;
use ureq::config::RedirectAuthHeaders;
use ureq::http::Response;
use ureq::Body;

/// An HTTP client for one endpoint, with the token for it, if any.
pub struct Client {
    agent: ureq::Agent,
    token: Option<String>,
    /// The host the token may be sent to (the endpoint's).
    token_host: Option<String>,
}

/// What a request is for, to word its errors.
pub struct Purpose<'a> {
    /// The repository or URL, as the user would recognise it.
    pub what: &'a str,
    /// The page where a gated model's terms are accepted, if it is a hub's.
    pub page: Option<&'a str>,
    /// The environment variable that holds the token for this hub.
    pub token_var: &'a str,
    /// The environment variable that moves this hub to a mirror, if there is one.
    pub endpoint_var: Option<&'a str>,
}

impl Client {
    /// A client that sends `token` (as a bearer token) to `endpoint`'s host only; redirects
    /// to other hosts (a hub's file storage) go without it.
    pub fn new(endpoint: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .redirect_auth_headers(RedirectAuthHeaders::SameHost)
            .max_redirects(10)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .user_agent(concat!("seed/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent, token, token_host: host_of(endpoint).map(str::to_ascii_lowercase) }
    }

    /// Sends a GET for `url` (from byte `from` on when it is above 0); returns the response
    /// when its status is 200 or 206, else an error in words.
    pub fn get(&self, url: &str, from: u64, purpose: &Purpose<'_>) -> anyhow::Result<Response<Body>> {
        let mut req = self.agent.get(url);
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
        }
        let same_host = host_of(url).map(str::to_ascii_lowercase) == self.token_host;
        if let (Some(token), true) = (&self.token, same_host) {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let response = req.call().map_err(|e| transport_error(e, url, purpose))?;
        let status = response.status().as_u16();
        if status == 200 || status == 206 {
            return Ok(response);
        }
        let code = response.headers().get("x-error-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let has_token = self.token.is_some() && same_host;
        Err(status_error(status, &code, has_token, purpose, url))
    }

    /// GET `url` and parse its body as JSON (at most 64 MiB).
    pub fn get_json(&self, url: &str, purpose: &Purpose<'_>) -> anyhow::Result<(serde_json::Value, Option<String>)> {
        let mut response = self.get(url, 0, purpose)?;
        let next = next_link(&response);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| anyhow::anyhow!("reading the file list of {} from {url}: {e}", purpose.what))?;
        let value = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("the file list of {} from {url} is not the JSON expected: {e}", purpose.what)
        })?;
        Ok((value, next))
    }
}

/// The `rel="next"` target of a `Link` header (the hub pages long listings).
fn next_link(response: &Response<Body>) -> Option<String> {
    let link = response.headers().get("link")?.to_str().ok()?;
    link.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| {
        let start = l.find('<')? + 1;
        let end = l.find('>')?;
        l.get(start..end).map(str::to_string)
    })
}

/// The host (with port) of an http(s) URL.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

fn status_error(status: u16, code: &str, has_token: bool, p: &Purpose<'_>, url: &str) -> anyhow::Error {
    let what = p.what;
    let var = p.token_var;
    let page = p.page.map(|page| format!(" at {page}")).unwrap_or_default();
    let message = match (status, code) {
        (401 | 403, "GatedRepo") | (403, _) if has_token => {
            format!("{what} is gated and the token in {var} has no access to it: accept its terms{page} with the account the token belongs to")
        }
        (401 | 403, "GatedRepo") => {
            format!("{what} is gated: accept its terms{page}, then set {var} to an access token of that account")
        }
        (401, "RepoNotFound") | (404, "RepoNotFound") if !has_token => {
            format!("{what} was not found: check the name (a private repository also needs an access token in {var})")
        }
        (401, _) if !has_token => format!("{what} needs an access token: set {var}"),
        (401, _) => format!("the token in {var} was refused for {what}: check that it is valid"),
        (404, "EntryNotFound") => format!("{what} has no such file ({url})"),
        (404, "RevisionNotFound") => format!("{what} has no such revision ({url})"),
        (404, _) => format!("{what} was not found (404 from {url})"),
        (429, _) => format!("the hub is limiting requests (429) for {what}: wait a while, or set {var} to a token"),
        (s, _) => format!("the hub answered {s} for {url}"),
    };
    anyhow::anyhow!(message)
}

fn transport_error(e: ureq::Error, url: &str, p: &Purpose<'_>) -> anyhow::Error {
    let host = host_of(url).unwrap_or(url);
    let detail = match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "no such host".to_string(),
        ureq::Error::TooManyRedirects => "too many redirects".to_string(),
        other => other.to_string(),
    };
    let mirror = p.endpoint_var.map(|v| format!(", or set {v} to a mirror")).unwrap_or_default();
    anyhow::anyhow!("cannot fetch {} from {host}: {detail}; check the network{mirror}", p.what)
}

/// Reads a token: the first variable of `vars` that is set and not empty.
pub fn token_from(vars: &[&str]) -> Option<String> {
    vars.iter().filter_map(|v| std::env::var(v).ok()).map(|t| t.trim().to_string()).find(|t| !t.is_empty())
}

/// Hugging Face's token: `HF_TOKEN`, else the file `huggingface-cli login` writes
/// (`$HF_HOME/token`, default `~/.cache/huggingface/token`).
pub fn huggingface_token() -> Option<String> {
    if let Some(t) = token_from(&["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
        return Some(t);
    }
    let home = std::env::var_os("HF_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache").join("huggingface")))?;
    let text = std::fs::read_to_string(home.join("token")).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Checks that `url` is http or https.
pub fn check_scheme(url: &str) -> anyhow::Result<()> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        bail!("`{url}` is not an http(s) URL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_errors() {
        assert_eq!(host_of("http://127.0.0.1:80/a?b"), Some("127.0.0.1:80"));
        assert_eq!(host_of("https://hf.co"), Some("hf.co"));
        let p =
            Purpose { what: "hf.co/a/b", page: Some("https://hf.co/a/b"), token_var: "HF_TOKEN", endpoint_var: None };
        let gated = status_error(401, "GatedRepo", false, &p, "u").to_string();
        assert!(
            gated.contains("gated") && gated.contains("HF_TOKEN") && gated.contains("https://hf.co/a/b"),
            "{gated}"
        );
        let denied = status_error(403, "GatedRepo", true, &p, "u").to_string();
        assert!(denied.contains("has no access"), "{denied}");
        let missing = status_error(401, "RepoNotFound", false, &p, "u").to_string();
        assert!(missing.contains("not found"), "{missing}");
        assert!(status_error(404, "", true, &p, "u").to_string().contains("not found"));
        assert!(check_scheme("ftp://x/y.gguf").is_err());
    }
}
