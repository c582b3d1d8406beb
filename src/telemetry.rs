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

/// Counts events that can come in floods (refused connections, overloaded requests) and says
/// when one is worth a log line: the 1st, 2nd, 4th, 8th… so a flood cannot turn into a flood
/// of log lines, and the count in the line shows how big it was.
#[derive(Default)]
pub struct Throttle(std::sync::atomic::AtomicU64);

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle(std::sync::atomic::AtomicU64::new(0))
    }

    /// The running count if this event should be logged.
    pub fn hit(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        n.is_power_of_two().then_some(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_flood_is_logged_logarithmically() {
        let t = super::Throttle::new();
        let logged = (0..1000).filter_map(|_| t.hit()).collect::<Vec<_>>();
        assert_eq!(logged, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    }
}
