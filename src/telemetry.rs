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
