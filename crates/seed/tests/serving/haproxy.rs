//! A real HAProxy in front of `seed serve` replicas: one frontend on a free loopback port,
//! routing by `Host` to one backend per region, each replica health-checked on `/health` and
//! asking its agent port for a weight (`ready up W%`, `drain`, `down`). Started in the
//! foreground, killed when dropped. Where HAProxy is missing, `scripts/setup-services.sh`
//! installs it (as root), as CI does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy.
pub struct HaProxy {
    child: Child,
    /// Its frontend's port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A replica behind it: its name, HTTP port and agent port.
pub struct Server {
    /// Unique name, e.g. `eu1`.
    pub name: String,
    /// `seed serve --port`.
    pub port: u16,
    /// `seed serve --agent-port`.
    pub agent: u16,
}

/// A loopback port free at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn binary() -> String {
    let found = |p: &str| Path::new(p).exists();
    if !found("/usr/sbin/haproxy") && Command::new("haproxy").arg("-v").output().is_err() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-services.sh");
        let ok = Command::new("bash").arg(script).status().is_ok_and(|s| s.success());
        assert!(ok, "HAProxy is missing: run scripts/setup-services.sh (as root)");
    }
    if found("/usr/sbin/haproxy") {
        "/usr/sbin/haproxy".into()
    } else {
        "haproxy".into()
    }
}

impl HaProxy {
    /// Starts HAProxy with one backend per `(region, servers)`; a request whose `Host` is
    /// `<region>.seed.test` goes to that region's backend, any other to the first region's.
    /// Waits until every server is up.
    pub fn start(regions: &[(&str, &[Server])]) -> HaProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cfg = format!(
            "global\n  maxconn 512\n  log stderr format raw local0 info\n\
             defaults\n  mode http\n  log global\n  option log-health-checks\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
             retries 2\n  option redispatch\n  retry-on conn-failure empty-response 503\n  option http-buffer-request\n\
             frontend seed\n  bind 127.0.0.1:{port}\n"
        );
        for (region, _) in regions {
            cfg += &format!("  use_backend {region} if {{ hdr(host) -m beg -i {region}.seed.test }}\n");
        }
        cfg += &format!("  default_backend {}\n", regions[0].0);
        for (region, servers) in regions {
            cfg += &format!("backend {region}\n  balance leastconn\n  option httpchk GET /health\n");
            for s in *servers {
                cfg += &format!(
                    "  server {} 127.0.0.1:{} weight 100 check inter 300ms fall 2 rise 1 agent-check agent-port {} agent-inter 300ms\n",
                    s.name, s.port, s.agent
                );
            }
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).expect("log"))
            .spawn()
            .expect("starting haproxy");
        let log = dir.path().join("haproxy.log");
        let mut proxy = HaProxy { child, port, dir };
        // Up once it answers through every backend.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (region, _) in regions {
            let host = format!("{region}.seed.test");
            loop {
                let listening = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).is_ok();
                if listening && super::process::http(proxy.port, "GET", "/health", "", &[("Host", &host)]).0 == 200 {
                    break;
                }
                let exited = proxy.child.try_wait().expect("try_wait");
                let why = || std::fs::read_to_string(&log).unwrap_or_default();
                assert!(exited.is_none(), "HAProxy exited ({exited:?}): {}", why());
                assert!(Instant::now() < deadline, "HAProxy did not come up for {region}: {}", why());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        proxy
    }
}

impl HaProxy {
    /// What HAProxy logged so far (health and agent check changes among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
