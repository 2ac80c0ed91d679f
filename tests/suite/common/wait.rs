//! Waiting on real processes without sleeping and looking: wait until a
//! condition holds ([`eventually`], [`until`]), or prove for a bounded time that it
//! keeps holding ([`holds_for`]).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often both helpers look.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` every 50 ms until it returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// As [`eventually`], for a condition that can say why it does not hold
/// yet: on timeout, panics with the last reason `f` gave.
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}:\n{why}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Polls `f` every 50 ms for `period`, and panics the first time it returns
/// false: proves, for that long, that something does not happen.
pub async fn holds_for<F, Fut>(period: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        assert!(
            f().await,
            "{what} stopped holding after {:?}",
            start.elapsed()
        );
        if start.elapsed() >= period {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
