//! One file from a URL into the cache: resumable, verified, never half in place.
//!
//! The bytes go to `NAME.partial` beside the final path. An interrupted download leaves
//! that file where it is, and the next attempt asks for the rest (`Range: bytes=N-`),
//! hashing what it already has first, so nothing is fetched twice. A server that ignores
//! the range (200 instead of 206) starts the file over. Only a file whose size and sha256
//! are what the hub lists is renamed to its final name; a finished file that does not
//! match is set aside as `NAME.rejected` (never in the cache, and not resumed from: its
//! bytes are known to be wrong) and the error names both sums.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::http::{Client, Purpose};
use crate::fetch::hex;

/// What the downloaded file must be.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// sha256, lowercase hex, when known.
    pub sha256: Option<String>,
}

/// The `.partial` file beside `dest`.
pub fn partial_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".partial")
}

fn with_suffix(dest: &Path, suffix: &str) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dest.with_file_name(name)
}

/// Downloads `url` to `dest` unless `dest` is already there. `label` names the file in
/// the progress bar and in errors.
pub fn fetch(
    client: &Client,
    url: &str,
    dest: &Path,
    expected: &Expected,
    label: &str,
    purpose: &Purpose<'_>,
) -> anyhow::Result<()> {
    let dir = dest.parent().context("the download path has no folder")?;
    fs::create_dir_all(dir).with_context(|| format!("creating the model cache folder {}", dir.display()))?;
    // One download of a file at a time; whoever waited finds it in place.
    let lock_path = dir.join(format!(".{}.lock", dest.file_name().unwrap_or_default().to_string_lossy()));
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if dest.is_file() {
        return Ok(());
    }

    let partial = partial_path(dest);
    let mut have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if expected.size.is_some_and(|size| have > size) {
        have = 0; // longer than the file can be: not a prefix of it
    }
    let mut hasher = Sha256::new();
    if have > 0 {
        hash_prefix(&partial, have, &mut hasher)?;
    }

    let bar = progress_bar(expected.size, label);
    bar.set_position(have);
    if expected.size != Some(have) || have == 0 {
        let mut response = client.get(url, have, purpose)?;
        let resumed = have > 0 && response.status().as_u16() == 206;
        if have > 0 && !resumed {
            eprintln!("{label}: the server does not resume downloads; starting over");
            have = 0;
            hasher = Sha256::new();
        }
        if resumed {
            check_content_range(&response, have, url)?;
        }
        let total = expected.size.or_else(|| response.body().content_length().map(|n| n + have));
        if let Some(total) = total {
            bar.set_length(total);
        }
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&partial)
            .with_context(|| format!("opening {}", partial.display()))?;
        if out.metadata().map(|m| m.len()).unwrap_or(0) != have {
            out.set_len(have).map_err(|e| write_error(e, &partial, have))?;
        }
        out.seek(SeekFrom::Start(have)).map_err(|e| write_error(e, &partial, have))?;
        let mut body = response.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = out.sync_all();
                    bar.abandon();
                    bail!(
                        "the download of {label} was interrupted after {} ({e}); the {} downloaded are \
                         kept in {} and the same command resumes from there",
                        megabytes(have),
                        megabytes(have),
                        partial.display()
                    );
                }
            };
            if let Some(size) = expected.size.filter(|&s| have + n as u64 > s) {
                bar.abandon();
                bail!("{url} sent more than the {size} bytes the hub lists for {label}");
            }
            out.write_all(&buf[..n]).map_err(|e| write_error(e, &partial, have))?;
            hasher.update(&buf[..n]);
            have += n as u64;
            bar.set_position(have);
        }
        out.sync_all().map_err(|e| write_error(e, &partial, have))?;
    }
    bar.finish_and_clear();

    if let Some(size) = expected.size.filter(|&s| s != have) {
        bail!("{label}: the server sent {have} of its {size} bytes; run the command again to resume");
    }
    let digest = hex(&hasher.finalize());
    if let Some(want) = expected.sha256.as_deref().filter(|&w| w != digest) {
        let rejected = with_suffix(dest, ".rejected");
        let _ = fs::rename(&partial, &rejected);
        bail!(
            "checksum mismatch for {label}: its sha256 is {digest}, the hub lists {want}; it was not \
             stored (set aside as {}), and the next attempt downloads it afresh",
            rejected.display()
        );
    }
    fs::rename(&partial, dest).with_context(|| format!("moving {} into place", dest.display()))?;
    let _ = fs::remove_file(&lock_path);
    Ok(())
}

/// Hashes the first `len` bytes of `path` (what an earlier attempt downloaded).
fn hash_prefix(path: &Path, len: u64, hasher: &mut Sha256) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let copied = io::copy(&mut file.take(len), hasher).with_context(|| format!("reading {}", path.display()))?;
    if copied != len {
        bail!("{} changed while it was read", path.display());
    }
    Ok(())
}

/// A 206 must start where we asked.
fn check_content_range(response: &ureq::http::Response<ureq::Body>, from: u64, url: &str) -> anyhow::Result<()> {
    let range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
    let start = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
    if start != Some(from) {
        bail!("{url} answered the request for bytes {from}- with the range `{range}`");
    }
    Ok(())
}

fn progress_bar(size: Option<u64>, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(size.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_string());
    bar
}

fn megabytes(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

/// A write error in words; "no space left" says what was kept.
pub fn write_error(e: io::Error, path: &Path, kept: u64) -> anyhow::Error {
    if e.raw_os_error() == Some(28) {
        anyhow::anyhow!(
            "no space left on the device while writing {}{}; free some space and run the command again",
            path.display(),
            if kept > 0 {
                format!(" ({} kept, the download resumes from there)", megabytes(kept))
            } else {
                String::new()
            }
        )
    } else {
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    }
}
