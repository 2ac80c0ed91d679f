//! Logging setup: `tracing` events as key=value lines on stderr, each
//! redacted ([`crate::secrets`]) on its way out.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `OKRD_LOG` (or `RUST_LOG`) sets the
/// filter; the default keeps sqlx's per-statement logs quiet.
pub fn init() {
    let filter = std::env::var("OKRD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(crate::secrets::RedactingWriter)
        .with_target(false)
        .init();
}

/// An error and its causes on one line, as `Display` of many errors
/// (reqwest's, hyper's) omits the causes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
