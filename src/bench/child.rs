//! An `okrd serve` child process, as production runs it: its own config
//! directory, a free port, readiness by `/metrics`, and its peak resident
//! memory read from `/proc`.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A running `okrd serve`.
pub struct Child {
    process: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client the phases share.
    pub client: reqwest::Client,
    log: PathBuf,
}

/// What a child is started with.
pub struct Setup<'a> {
    /// Its working directory, holding `okrd.yaml`, `objectives/`,
    /// `connectors/` and `okrd.log`; created if missing.
    pub dir: &'a Path,
    /// `database.url`.
    pub database_url: &'a str,
    /// `scoring.interval`.
    pub scoring_interval: &'a str,
    /// The `teams:` section's entries, one YAML line each.
    pub teams: &'a [String],
}

impl Child {
    /// Writes `okrd.yaml` into `setup.dir` and starts `okrd serve` there;
    /// returns once `/metrics` answers.
    pub async fn start(setup: &Setup<'_>) -> anyhow::Result<Child> {
        let dir = setup.dir;
        fs::create_dir_all(dir.join("objectives"))?;
        fs::create_dir_all(dir.join("connectors"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut yaml = format!(
            "database:\n  url: {:?}\npaths:\n  objectives: objectives\n  connectors: connectors\n\
             http:\n  listen: 127.0.0.1:{port}\n  max_body: 64MiB\nscoring:\n  interval: {}\n",
            setup.database_url, setup.scoring_interval
        );
        if !setup.teams.is_empty() {
            yaml.push_str("teams:\n");
            for team in setup.teams {
                yaml.push_str(&format!("  {team}\n"));
            }
        }
        fs::write(dir.join("okrd.yaml"), yaml)?;
        let log = dir.join("okrd.log");
        let exe = std::env::current_exe().context("finding the okrd binary")?;
        let process = Command::new(exe)
            .args(["serve", "--config", "okrd.yaml"])
            .current_dir(dir)
            .env_remove("OKRD_CONFIG")
            // OKRD_BENCH_LOG sets the children's RUST_LOG (default warn).
            .env(
                "RUST_LOG",
                std::env::var("OKRD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .context("starting okrd serve")?;
        let mut child = Child {
            process,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = child
                .client
                .get(format!("{}/metrics", child.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(child);
                }
            }
            if let Some(status) = child.process.try_wait()? {
                bail!(
                    "okrd serve exited with {status}; see {}",
                    child.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "okrd serve did not answer in 120s; see {}",
                    child.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// One sample of `/metrics`: the metric `name` whose labels include all
    /// of `labels`, summed over the series that match.
    pub async fn sample(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        Ok(sample(&self.metrics().await?, name, labels))
    }

    /// Sends SIGHUP: the config is reloaded and every KR recomputed.
    pub fn hang_up(&self) -> anyhow::Result<()> {
        signal(self.process.id(), "-HUP")
    }

    /// The process's peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.process.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/PID/status")?;
        Ok(kb * 1024)
    }

    /// Stops the process (SIGTERM, as a supervisor would) and returns its
    /// peak resident memory.
    pub async fn stop(mut self) -> anyhow::Result<u64> {
        let peak = self.peak_rss()?;
        signal(self.process.id(), "-TERM")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.process.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.process.kill();
                bail!("okrd serve did not stop in 60s; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(peak)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn signal(pid: u32, which: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill {which} {pid} failed");
    }
    Ok(())
}

/// The sum of the samples of `name` in Prometheus text `text` whose labels
/// include every pair of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_part, value) = match rest.as_bytes().first() {
            Some(b'{') => match rest.rsplit_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            Some(b' ') => ("", rest),
            _ => continue,
        };
        if labels
            .iter()
            .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")))
        {
            sum += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_matched_by_name_and_labels() {
        let text = "# HELP x\nokrd_points_ingested_total{connector=\"a\"} 5\n\
                    okrd_points_ingested_total{connector=\"b\"} 7\n\
                    okrd_points_ingested_total_x 1\nokrd_up 1\n";
        assert_eq!(sample(text, "okrd_points_ingested_total", &[]), 12.0);
        assert_eq!(
            sample(text, "okrd_points_ingested_total", &[("connector", "b")]),
            7.0
        );
        assert_eq!(sample(text, "okrd_up", &[]), 1.0);
        assert_eq!(sample(text, "okrd_down", &[]), 0.0);
    }
}
