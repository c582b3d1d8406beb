//! Logging setup: structured `tracing` to stderr (stdout may be the stdio transport).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `TOLLGATE_LOG` (or `RUST_LOG`) sets the filter.
pub fn init() {
    let filter =
        std::env::var("TOLLGATE_LOG").ok().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
