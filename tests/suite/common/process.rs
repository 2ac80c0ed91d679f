//! External programs the tests start (Prometheus, Alertmanager, promtool):
//! found on PATH, given a free port, killed and reaped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `names` on PATH; panics naming the install script.
pub fn which(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find_map(|n| {
            std::env::split_paths(&path)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("none of {names:?} is installed: scripts/test installs it (through scripts/install-test-deps.sh)")
        })
}

/// A program running for a test, with its scratch directory; killed on drop.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The scratch directory (config files, storage).
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `bin` with `args` (quiet), listening (by its arguments) on
    /// `port`, with `dir` as its scratch directory.
    pub fn spawn(bin: PathBuf, args: &[String], port: u16, dir: tempfile::TempDir) -> Daemon {
        let child = Command::new(&bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

/// Debian's Prometheus scraping `target` (host:port) every second as job
/// `job`. Waiting for its first scrapes is the caller's: what counts as
/// ready differs by test.
pub fn spawn_prometheus(job: &str, target: &str) -> Daemon {
    let bin = which(&["prometheus"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    Daemon::spawn(bin, &args, port, dir)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
