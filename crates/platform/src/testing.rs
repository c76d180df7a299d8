//! Test support (the `testing` feature): a real PostgreSQL server in a temporary folder.
//!
//! [`PgServer::start`] runs `initdb` into a fresh folder and starts `postgres` listening on a
//! Unix socket in that folder only (no TCP port), with trust authentication for the user
//! `seed`. As root — PostgreSQL refuses to run as root — the server runs as the `postgres`
//! system user that Debian's package creates. Dropping the value stops the server and removes
//! the folder. Where the server programs are missing, `scripts/setup-services.sh` installs them
//! from Debian's packages (as root), as CI does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PostgreSQL server started for a test.
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`: the newest Debian install, else the
/// one on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn check(what: &str, out: std::io::Result<Output>) -> Result<Output, String> {
    let out = out.map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PgServer {
    /// Starts a server (installing PostgreSQL first if it is missing and this is root), with
    /// `fsync` off: the tests kill Seed's processes, never PostgreSQL, so the durability of
    /// its own files is not under test and a 2-core machine stays quick.
    pub fn start() -> Result<PgServer, String> {
        PgServer::start_with_fsync(false)
    }

    /// As [`PgServer::start`], with `fsync` as given (on for benchmarks: a real server's
    /// commits wait for the disk).
    pub fn start_with_fsync(fsync: bool) -> Result<PgServer, String> {
        let bin = match find_bin() {
            Some(bin) => bin,
            None => {
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-services.sh");
                check("scripts/setup-services.sh", Command::new("bash").arg(&script).output())?;
                find_bin().ok_or("PostgreSQL's server programs are still missing after scripts/setup-services.sh")?
            }
        };
        let run_as = is_root().then(|| "postgres".to_string());
        let dir = tempfile::Builder::new().prefix("seed-pg-").tempdir().map_err(|e| format!("temp folder: {e}"))?;
        let server = PgServer { dir, bin, run_as };
        if let Some(user) = &server.run_as {
            check("chown", Command::new("chown").arg(user).arg(server.dir.path()).output())?;
        }
        let data = server.dir.path().join("data");
        check(
            "initdb",
            server
                .command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "seed", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
                .output(),
        )?;
        let options = format!(
            "-c listen_addresses= -k {} -c fsync={} -c max_connections=200",
            server.socket_dir().display(),
            if fsync { "on" } else { "off" }
        );
        check(
            "pg_ctl start",
            server
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .output(),
        )?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// The folder holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of database `name` (which [`PgServer::create_database`] makes).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://seed@/{name}?host={}", self.socket_dir().display())
    }

    /// Creates database `name`; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Runs `sql` with `psql` in database `db`; returns what it printed (unaligned, no headers).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = check(
            "psql",
            Command::new(self.bin.join("psql"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-U", "seed", "-d", db, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql])
                .output(),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.command("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
    }
}
