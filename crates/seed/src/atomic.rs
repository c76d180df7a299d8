//! Files that appear whole or not at all: written under a temporary name beside
//! the target, then synced and renamed over it. A run that fails or is killed
//! leaves at most a `.NAME.*.partial` file, never a half-written NAME.

use std::io;
use std::path::Path;

use tempfile::NamedTempFile;

/// A new temporary file in `target`'s directory, readable by all as a normally
/// created file would be (`tempfile`'s default is owner-only).
pub fn create_beside(target: &Path) -> io::Result<NamedTempFile> {
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().map_or("out".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir)
}

/// Syncs `tmp` to disk and renames it to `target` (replacing what was there).
pub fn commit(tmp: NamedTempFile, target: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(target).map(drop).map_err(|e| e.error)
}
