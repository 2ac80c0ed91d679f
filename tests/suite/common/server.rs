//! The real `okrd serve` binary on port 0 in a temp directory of its own
//! config, for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A running `okrd serve` and its working directory.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory holding config/ (and the SQLite file).
    pub dir: tempfile::TempDir,
    /// The database URL the server uses.
    pub database_url: String,
    log: Arc<Mutex<String>>,
}

/// The service config written for tests: no connectors, fast recompute.
pub fn service_yaml(extra_http: &str) -> String {
    format!(
        "http:\n  listen: 127.0.0.1:0\n{extra_http}scoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"http://127.0.0.1:9/hook\" }}\n"
    )
}

/// An objective over a period around `now` with one KR on `metric`
/// (0.30 → 0.50, higher is better) guarded by `tickets`.
pub fn objective_yaml(id: &str, metric: &str, now: DateTime<Utc>) -> String {
    let start = (now - chrono::TimeDelta::days(30)).format("%Y-%m-%d");
    let end = (now + chrono::TimeDelta::days(60)).format("%Y-%m-%d");
    format!(
        "id: {id}\nobjective: Test objective {id}\nteam: growth\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  - id: kr\n    title: Raise {metric} from 30% to 50%\n    metric: {metric}\n    baseline: 0.30\n    target: 0.50\n    counter_metrics:\n      - {{ metric: tickets, better: lower, tolerance: 5% }}\n"
    )
}

impl Server {
    /// Starts the binary with `service` as config/okrd.yaml, `objectives`
    /// as files in config/objectives, on `database_url` (None: SQLite in
    /// the temp dir), and waits until it listens.
    pub fn start(
        service: &str,
        objectives: &[(&str, String)],
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config/objectives")).unwrap();
        std::fs::write(dir.path().join("config/okrd.yaml"), service).unwrap();
        for (name, text) in objectives {
            std::fs::write(dir.path().join("config/objectives").join(name), text).unwrap();
        }
        let database_url = database_url
            .map(String::from)
            .unwrap_or_else(|| format!("sqlite://{}/data/okrd.db", dir.path().display()));
        Self::spawn(dir, database_url, env)
    }

    /// Starts the binary again in the same directory (after [`Server::stop`]).
    pub fn restart(mut self, env: &[(&str, &str)]) -> Server {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let url = self.database_url.clone();
        Self::spawn(dir, url, env)
    }

    fn spawn(dir: tempfile::TempDir, database_url: String, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_okrd"));
        cmd.arg("serve").current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("OKRD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OKRD_DATABASE__URL", &database_url)
            .env("OKRD_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn okrd serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let _ = tx.send(line[i + "listening on ".len()..].trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("okrd serve did not start:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child: Some(child),
            base,
            dir,
            database_url,
            log,
        }
    }

    /// The working directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for exit; returns whether it exited with 0.
    pub fn terminate(&mut self) -> bool {
        if let Some(child) = &self.child {
            signal(child.id(), "TERM");
        }
        self.wait_exit()
    }

    /// Waits (30 s at most) for the process to exit; returns whether it
    /// exited with 0.
    pub fn wait_exit(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "okrd serve did not exit within 30s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM, then wait).
    pub fn stop(&mut self) {
        self.terminate();
    }

    /// Runs `okrd ingest FILE` (a path under the working directory) on the
    /// server's database, beside it or while it is stopped; panics with
    /// its stderr unless it succeeds.
    pub fn ingest(&self, file: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_okrd"))
            .current_dir(self.path())
            .args(["ingest", file])
            .env("OKRD_DATABASE__URL", &self.database_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "okrd ingest {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The path of a file under the working directory.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// Sends a signal (`TERM`, `HUP`, ...) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
