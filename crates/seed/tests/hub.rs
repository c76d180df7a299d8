//! `seed pull hf.co/…` against a loopback server that imitates Hugging Face's and
//! ModelScope's HTTP APIs (the file list with LFS sha256 and sizes, `resolve/` with a
//! redirect to storage, byte ranges, gated repositories, their error headers). The test
//! starts the server; nothing touches the network.
//!
//! What it shows: the quantization is picked as Ollama does and a missing one lists those
//! there are; an interrupted 100 MB download resumes from where it stopped (the server
//! counts the bytes it sent); checksum mismatches, gated models, missing repositories and
//! a full disk are clear errors that leave nothing in the cache; a split model is joined;
//! a pulled model runs by its reference.
#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// One repository of the imitation hub.
#[derive(Default)]
struct RepoFiles {
    files: Vec<(String, Arc<Vec<u8>>)>,
    /// Needs `Authorization: Bearer good-token`.
    gated: bool,
    /// sha256 the listing claims instead of the real one, by path.
    claimed_sha: HashMap<String, String>,
}

#[derive(Default)]
struct Hub {
    repos: HashMap<String, RepoFiles>,
    /// Bytes of file content sent, by path.
    sent: Mutex<HashMap<String, u64>>,
    /// `Range` headers received, by path.
    ranges: Mutex<Vec<(String, Option<String>)>>,
    /// The next download of this path stops after this many bytes.
    cut: Mutex<Option<(String, u64)>>,
}

type Shared = Arc<Hub>;

fn error(status: StatusCode, code: &str) -> Response {
    (status, [("x-error-code", code.to_string())], code.to_string()).into_response()
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository, or `None` (answered as Hugging Face answers an anonymous caller: 401 RepoNotFound).
fn listing<'a>(hub: &'a Hub, owner: &str, name: &str) -> Option<&'a RepoFiles> {
    hub.repos.get(&format!("{owner}/{name}"))
}

fn claimed_sha(repo: &RepoFiles, path: &str, data: &[u8]) -> String {
    repo.claimed_sha.get(path).cloned().unwrap_or_else(|| sha_hex(data))
}

/// `GET /api/models/{owner}/{name}/tree/{rev}`: Hugging Face's file list.
async fn hf_tree(
    State(hub): State<Shared>,
    UrlPath((owner, name, _rev)): UrlPath<(String, String, String)>,
) -> Response {
    let Some(repo) = listing(&hub, &owner, &name) else {
        return error(StatusCode::UNAUTHORIZED, "RepoNotFound");
    };
    let mut items = vec![
        serde_json::json!({"type": "file", "path": "README.md", "size": 10, "oid": "0"}),
        serde_json::json!({"type": "directory", "path": "Q8_0", "size": 0, "oid": "1"}),
    ];
    for (path, data) in &repo.files {
        items.push(serde_json::json!({
            "type": "file", "path": path, "size": data.len(), "oid": "2",
            "lfs": {"oid": claimed_sha(repo, path, data), "size": data.len(), "pointerSize": 134},
        }));
    }
    axum::Json(items).into_response()
}

/// `GET /api/v1/models/{owner}/{name}/repo/files`: ModelScope's file list.
async fn ms_files(State(hub): State<Shared>, UrlPath((owner, name)): UrlPath<(String, String)>) -> Response {
    let Some(repo) = hub.repos.get(&format!("{owner}/{name}")) else {
        return axum::Json(serde_json::json!({"Code": 10010205001u64, "Message": "model not found"})).into_response();
    };
    let files: Vec<_> = repo
        .files
        .iter()
        .map(|(path, data)| {
            let leaf = path.rsplit('/').next().unwrap_or(path);
            serde_json::json!({"Type": "blob", "Path": path, "Name": leaf, "Size": data.len(), "Sha256": sha_hex(data)})
        })
        .collect();
    axum::Json(serde_json::json!({"Code": 200, "Data": {"Files": files}})).into_response()
}

/// `GET /{owner}/{name}/resolve/{rev}/{*path}`: checks access, then redirects to storage.
async fn resolve(
    State(hub): State<Shared>,
    UrlPath((owner, name, _rev, path)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(repo) = listing(&hub, &owner, &name) else {
        return error(StatusCode::UNAUTHORIZED, "RepoNotFound");
    };
    if repo.gated {
        match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            None => return error(StatusCode::UNAUTHORIZED, "GatedRepo"),
            Some("Bearer good-token") => {}
            Some(_) => return error(StatusCode::FORBIDDEN, "GatedRepo"),
        }
    }
    if !repo.files.iter().any(|(p, _)| *p == path) {
        return error(StatusCode::NOT_FOUND, "EntryNotFound");
    }
    (StatusCode::FOUND, [(header::LOCATION, format!("/storage/{owner}/{name}/{path}"))]).into_response()
}

/// `GET /models/{owner}/{name}/resolve/{rev}/{*path}`: ModelScope serves the bytes directly.
async fn ms_resolve(
    State(hub): State<Shared>,
    UrlPath((owner, name, _rev, path)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    serve_bytes(&hub, &owner, &name, &path, &headers)
}

/// `GET /storage/{owner}/{name}/{*path}`: the bytes, with `Range` support, cut short once
/// when the test asks.
async fn storage(
    State(hub): State<Shared>,
    UrlPath((owner, name, path)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    serve_bytes(&hub, &owner, &name, &path, &headers)
}

fn serve_bytes(hub: &Hub, owner: &str, name: &str, path: &str, headers: &HeaderMap) -> Response {
    let Some(data) = hub
        .repos
        .get(&format!("{owner}/{name}"))
        .and_then(|r| r.files.iter().find(|(p, _)| p == path))
        .map(|(_, d)| d.clone())
    else {
        return error(StatusCode::NOT_FOUND, "EntryNotFound");
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    hub.ranges.lock().unwrap().push((path.to_string(), range.clone()));
    let from: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if from > data.len() {
        return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    }
    let cut = {
        let mut c = hub.cut.lock().unwrap();
        match c.as_ref() {
            Some((p, n)) if p == path => {
                let n = *n as usize;
                *c = None;
                Some(n)
            }
            _ => None,
        }
    };
    let end = cut.map_or(data.len(), |n| n.min(data.len()));
    *hub.sent.lock().unwrap().entry(path.to_string()).or_default() += (end - from) as u64;
    let total = data.len();
    // Chunks of the requested range; a cut ends the stream with an error, which aborts the
    // connection after the bytes sent so far, as a dropped network does.
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = (from..end)
        .step_by(1 << 20)
        .map(|at| Ok(Bytes::copy_from_slice(&data[at..(at + (1 << 20)).min(end)])))
        .collect();
    if cut.is_some() {
        chunks.push(Err(std::io::Error::other("cut")));
    }
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_LENGTH, (total - from).into());
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {from}-{}/{total}", total.saturating_sub(1));
        response.headers_mut().insert(header::CONTENT_RANGE, value.parse().unwrap());
    }
    response
}

/// Starts the imitation hub on a loopback port; returns its base URL.
fn start(hub: Shared) -> String {
    let app = Router::new()
        .route("/api/models/{owner}/{name}/tree/{rev}", get(hf_tree))
        .route("/api/v1/models/{owner}/{name}/repo/files", get(ms_files))
        .route("/models/{owner}/{name}/resolve/{rev}/{*path}", get(ms_resolve))
        .route("/storage/{owner}/{name}/{*path}", get(storage))
        .route("/{owner}/{name}/resolve/{rev}/{*path}", get(resolve))
        .with_state(hub);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// Deterministic bytes that are not a pattern a bug could reproduce by accident.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `seed ARGS` with its cache in `home` and the hubs at `base`.
fn seed(home: &Path, base: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seed"));
    cmd.args(args)
        .env("SEED_HOME", home)
        .env("HF_ENDPOINT", base)
        .env("MODELSCOPE_ENDPOINT", base)
        .env("HF_HOME", home.join("hf-home"))
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("MODELSCOPE_API_TOKEN");
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    cmd.output().expect("run seed")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo_dir(home: &Path, owner_name: &str) -> PathBuf {
    home.join("models").join("hf.co").join(owner_name)
}

#[test]
fn quantizations_are_picked_and_missing_ones_listed() {
    let mut hub = Hub::default();
    let files = vec![
        ("m-Q8_0.gguf".to_string(), Arc::new(noise(3000, 1))),
        ("m-Q4_K_M.gguf".to_string(), Arc::new(noise(2000, 2))),
        ("m-UD-Q4_K_M.gguf".to_string(), Arc::new(noise(2100, 3))),
        ("mmproj-m-F16.gguf".to_string(), Arc::new(noise(100, 4))),
    ];
    hub.repos.insert("org/M-GGUF".into(), RepoFiles { files: files.clone(), ..RepoFiles::default() });
    let one = vec![("one-Q8_0.gguf".to_string(), Arc::new(noise(1000, 5)))];
    hub.repos.insert("org/One-GGUF".into(), RepoFiles { files: one, ..RepoFiles::default() });
    let hub = Arc::new(hub);
    let base = start(hub.clone());
    let home = tempfile::tempdir().unwrap();

    // Default: Q4_K_M, the plain one rather than the UD variant.
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/M-GGUF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = repo_dir(home.path(), "org/M-GGUF").join("m-Q4_K_M.gguf");
    assert!(stdout(&out).contains(&path.display().to_string()), "{}", stdout(&out));
    assert_eq!(std::fs::read(&path).unwrap(), *files[1].1);

    // A tag in another case; the cached file is found again without a download.
    let out = seed(home.path(), &base, None, &["pull", "huggingface.co/org/M-GGUF:q8_0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(repo_dir(home.path(), "org/M-GGUF").join("m-Q8_0.gguf")).unwrap(), *files[0].1);
    let before = hub.sent.lock().unwrap().clone();
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/M-GGUF:Q8_0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(*hub.sent.lock().unwrap(), before, "a cached model is not downloaded again");

    // One file by its path.
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/M-GGUF/m-UD-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A repository with one model and no Q4_K_M: the reference without a tag takes it, and
    // later runs find it without asking the hub (here: with the hub unreachable).
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/One-GGUF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = seed(home.path(), "http://127.0.0.1:1", None, &["pull", "hf.co/org/One-GGUF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("one-Q8_0.gguf"), "{}", stdout(&out));

    // A missing quantization lists the ones there are (not the projector).
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/M-GGUF:Q2_K"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no Q2_K file") && err.contains("m-Q8_0.gguf") && !err.contains("mmproj"), "{err}");

    // The same repository on ModelScope.
    let out = seed(home.path(), &base, None, &["pull", "modelscope.cn/org/M-GGUF:Q8_0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ms = home.path().join("models/modelscope.cn/org/M-GGUF/m-Q8_0.gguf");
    assert_eq!(std::fs::read(ms).unwrap(), *files[0].1);

    // A region's own hub: its replicas pull from the `model_hub` of seed.toml, not from
    // HF_ENDPOINT (unreachable here). The bytes are no model, so loading then fails — after
    // the pull, which is what this checks.
    let config = home.path().join("seed.toml");
    std::fs::write(
        &config,
        format!(
            "[[region]]\nname = \"eu\"\nstore = \"eu.sqlite\"\nmodel_hub = \"{base}\"\n\n\
             [[edition]]\nname = \"e\"\nmodel = \"hf.co/org/M-GGUF/m-Q8_0.gguf\"\nregions = [\"eu\"]\n"
        ),
    )
    .unwrap();
    std::fs::remove_file(repo_dir(home.path(), "org/M-GGUF").join("m-Q8_0.gguf")).unwrap();
    let out = seed(
        home.path(),
        "http://127.0.0.1:1",
        None,
        &["serve", "--config", config.to_str().unwrap(), "--region", "eu"],
    );
    assert!(!out.status.success());
    assert!(repo_dir(home.path(), "org/M-GGUF").join("m-Q8_0.gguf").is_file(), "{}", stderr(&out));
    assert!(stderr(&out).contains("GGUF"), "{}", stderr(&out));

    // `seed models` lists what was pulled.
    let out = seed(home.path(), &base, None, &["models"]);
    assert!(stdout(&out).contains("hf.co/org/M-GGUF/m-Q4_K_M.gguf"), "{}", stdout(&out));
}

#[test]
fn an_interrupted_100_mb_pull_resumes_where_it_stopped() {
    const SIZE: usize = 100_000_000;
    const CUT: u64 = 37_000_000;
    let data = Arc::new(noise(SIZE, 7));
    let mut hub = Hub::default();
    hub.repos.insert(
        "org/Big-GGUF".into(),
        RepoFiles { files: vec![("big-Q4_K_M.gguf".into(), data.clone())], ..Default::default() },
    );
    let hub = Arc::new(hub);
    *hub.cut.lock().unwrap() = Some(("big-Q4_K_M.gguf".into(), CUT));
    let base = start(hub.clone());
    let home = tempfile::tempdir().unwrap();
    let dir = repo_dir(home.path(), "org/Big-GGUF");

    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/Big-GGUF"]);
    assert!(!out.status.success(), "the cut download must fail");
    let err = stderr(&out);
    assert!(err.contains("interrupted") && err.contains("resumes"), "{err}");
    let partial = dir.join("big-Q4_K_M.gguf.partial");
    // What arrived before the connection dropped is kept (the server's last bytes may
    // have been in flight when it dropped, as on a real network).
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > CUT / 2 && kept <= CUT, "kept {kept} of the {CUT} sent");
    assert!(!dir.join("big-Q4_K_M.gguf").exists(), "nothing half-written at the final name");

    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/Big-GGUF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let done = dir.join("big-Q4_K_M.gguf");
    assert_eq!(seed::fetch::sha256_file(&done).unwrap(), sha_hex(&data));
    assert!(!partial.exists());
    // The second request asked for exactly the rest: nothing kept was fetched again.
    let ranges = hub.ranges.lock().unwrap().clone();
    let name = "big-Q4_K_M.gguf".to_string();
    assert_eq!(ranges, vec![(name.clone(), None), (name.clone(), Some(format!("bytes={kept}-")))]);
    assert_eq!(hub.sent.lock().unwrap()[&name], CUT + (SIZE as u64 - kept));
}

#[test]
fn refusals_are_explained_and_leave_nothing_in_the_cache() {
    let mut hub = Hub::default();
    let gated = vec![("g-Q4_K_M.gguf".to_string(), Arc::new(noise(5000, 9)))];
    hub.repos.insert("meta/Gated-GGUF".into(), RepoFiles { files: gated.clone(), gated: true, ..Default::default() });
    let bad = vec![("b-Q4_K_M.gguf".to_string(), Arc::new(noise(4000, 10)))];
    let mut claimed = HashMap::new();
    claimed.insert("b-Q4_K_M.gguf".to_string(), "ab".repeat(32));
    hub.repos.insert("org/Bad-GGUF".into(), RepoFiles { files: bad, claimed_sha: claimed, ..Default::default() });
    hub.repos.insert(
        "org/Full-GGUF".into(),
        RepoFiles { files: vec![("f-Q4_K_M.gguf".into(), Arc::new(noise(6000, 11)))], ..Default::default() },
    );
    let base = start(Arc::new(hub));
    let home = tempfile::tempdir().unwrap();

    let out = seed(home.path(), &base, None, &["pull", "hf.co/nobody/Nothing-GGUF"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("hf.co/nobody/Nothing-GGUF was not found"), "{err}");

    let out = seed(home.path(), &base, None, &["pull", "hf.co/meta/Gated-GGUF"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("gated") && err.contains("HF_TOKEN"), "{err}");
    let out = seed(home.path(), &base, Some("wrong-token"), &["pull", "hf.co/meta/Gated-GGUF"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("has no access"), "{err}");
    let out = seed(home.path(), &base, Some("good-token"), &["pull", "hf.co/meta/Gated-GGUF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(repo_dir(home.path(), "meta/Gated-GGUF").join("g-Q4_K_M.gguf")).unwrap(), *gated[0].1);

    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/Bad-GGUF/b-Q4_K_M.gguf"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("checksum mismatch") && err.contains(&"ab".repeat(32)), "{err}");
    let dir = repo_dir(home.path(), "org/Bad-GGUF");
    assert!(!dir.join("b-Q4_K_M.gguf").exists() && dir.join("b-Q4_K_M.gguf.rejected").exists());

    // A disk that is full: the download's file is /dev/full, where every write fails with ENOSPC.
    let dir = repo_dir(home.path(), "org/Full-GGUF");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("f-Q4_K_M.gguf.partial")).unwrap();
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org/Full-GGUF"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("no space left on the device"), "{err}");
    assert!(!dir.join("f-Q4_K_M.gguf").exists());

    // A reference that cannot be read says which forms can.
    let out = seed(home.path(), &base, None, &["pull", "hf.co/org"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("hf.co/OWNER/REPO[:QUANT]"), "{err}");
}

/// The synthetic Qwen 3 model, split in two as `llama-gguf-split` would, is pulled, joined
/// and run by its reference, and answers exactly as the original file does.
#[test]
fn a_split_model_is_joined_and_runs_by_its_reference() {
    let original =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/synthetic/qwen3-tiny-q8_0.gguf");
    if !original.is_file() {
        eprintln!("SKIPPED: synthetic fixture not found at {} (see issue 9)", original.display());
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let parts: Vec<PathBuf> = (1..=2).map(|i| work.path().join(format!("part{i}"))).collect();
    let source = model::gguf::GgufFile::open(&original).unwrap();
    seed::hub::split::split_for_tests(&source, 2, &parts).unwrap();
    let files = (1..=2)
        .map(|i| (format!("Q8_0/tiny-Q8_0-{i:05}-of-00002.gguf"), Arc::new(std::fs::read(&parts[i - 1]).unwrap())))
        .collect();
    let mut hub = Hub::default();
    hub.repos.insert("org/Tiny-GGUF".into(), RepoFiles { files, ..Default::default() });
    let base = start(Arc::new(hub));
    let home = tempfile::tempdir().unwrap();

    let args = ["generate", "--prompt", "Hello", "--raw", "-n", "6", "--json"];
    let reference = "hf.co/org/Tiny-GGUF:Q8_0";
    let out = seed(home.path(), &base, None, &[&args[..], &["--model", reference]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let via_hub: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let joined = repo_dir(home.path(), "org/Tiny-GGUF").join("Q8_0/tiny-Q8_0.gguf");
    assert!(joined.is_file());
    assert!(!repo_dir(home.path(), "org/Tiny-GGUF").join("Q8_0/tiny-Q8_0-00001-of-00002.gguf").exists());

    let out = seed(home.path(), &base, None, &[&args[..], &["--model", original.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let direct: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_hub["token_ids"], direct["token_ids"]);
    assert_eq!(via_hub["token_ids"].as_array().map(Vec::len), Some(6));

    // A part given on its own is refused with what to do.
    let out = seed(home.path(), &base, None, &[&args[..], &["--model", parts[0].to_str().unwrap()]].concat());
    assert!(!out.status.success() && stderr(&out).contains("split model"), "{}", stderr(&out));
}
