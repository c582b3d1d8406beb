//! Log throttling for events that can come in floods (refused connections, overloaded requests).

/// Counts events and says when one is worth a log line: the 1st, 2nd, 4th, 8th… so a flood
/// cannot turn into a flood of log lines, and the count in the line shows how big it was.
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
