//! Load shapes over HTTP: open-loop paced latency and closed-loop throughput, with what each
//! call outcome was and what CPU the row cost.

use super::client::Endpoint;
use super::cpu::{Meters, Usage};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Outcome {
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn record(&mut self, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
    pub fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Calls per second actually offered (paced) or achieved (sequential).
    pub rate: f64,
    pub outcome: Outcome,
    pub usage: Usage,
}

pub fn percentiles(mut samples: Vec<Duration>, rate: f64, outcome: Outcome) -> Latency {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
        samples.get(i.min(samples.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let max = samples.last().copied().unwrap_or_default();
    Latency { p50: at(0.50), p99: at(0.99), max, rate, outcome, usage: Usage::default() }
}

/// Open loop: one call starts every `1/rate` s whether or not earlier ones have finished (each
/// in its own task on its own keep-alive connection, so a slow call never delays the next; a
/// connection is opened if all are busy). Latency is from the call's start to its reply's last
/// byte.
pub async fn paced(ep: &Arc<Endpoint>, rate: u64, secs: u64) -> Latency {
    let total = (rate * secs) as usize;
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    let start = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = ep.call().await;
            (t.elapsed(), r)
        }));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    let (mut samples, mut outcome) = (Vec::with_capacity(total), Outcome::default());
    for t in tasks {
        let (d, r) = t.await.expect("call task");
        if r.is_ok() {
            samples.push(d);
        }
        outcome.record(r);
    }
    percentiles(samples, offered, outcome)
}

/// Smoke mode: `n` calls one after another.
pub async fn sequential_http(ep: &Arc<Endpoint>, n: usize) -> Latency {
    let (mut samples, mut outcome) = (Vec::with_capacity(n), Outcome::default());
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let r = ep.call().await;
        if r.is_ok() {
            samples.push(t.elapsed());
        }
        outcome.record(r);
    }
    percentiles(samples, n as f64 / start.elapsed().as_secs_f64(), outcome)
}

/// How an HTTP front is loaded: paced latency and closed-loop throughput for a number of seconds
/// (full), or a few hundred unpaced calls (smoke).
#[derive(Clone, Copy)]
pub struct Load {
    pub full: bool,
    /// Paced latency rows: this many calls per second for `paced_secs` (full mode); sequential
    /// calls without pacing in smoke mode.
    pub rate: u64,
    pub paced_secs: u64,
    pub smoke_calls: usize,
    /// Throughput rows: calls in flight, and for how long (full) or how many calls (smoke).
    pub concurrency: usize,
    pub burst_secs: u64,
}

/// The latency row of `plan` against `ep`, with `gateway`'s CPU (`peers`: processes that serve
/// the calls behind it, such as a stdio upstream, not counted as other load).
pub async fn latency(ep: &Arc<Endpoint>, plan: &Load, gateway: Option<u32>, peers: &[u32]) -> Latency {
    let meters = Meters::start(gateway, peers);
    let mut l = if plan.full {
        paced(ep, plan.rate, plan.paced_secs).await
    } else {
        sequential_http(ep, plan.smoke_calls).await
    };
    l.usage = meters.stop();
    l
}

pub struct Throughput {
    /// Successful calls per second.
    pub rate: f64,
    pub outcome: Outcome,
    pub usage: Usage,
}

/// Closed loop: `concurrency` workers each send the next call as soon as the last one is
/// answered, for `secs` (full) or until `calls` have been sent (smoke).
pub async fn throughput(
    ep: &Arc<Endpoint>,
    concurrency: usize,
    secs: u64,
    calls: usize,
    gateway: Option<u32>,
    peers: &[u32],
) -> Throughput {
    let deadline = (secs > 0).then(|| Instant::now() + Duration::from_secs(secs));
    let budget = Arc::new(AtomicUsize::new(if secs > 0 { usize::MAX } else { calls }));
    let meters = Meters::start(gateway, peers);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ep, budget) = (ep.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            while deadline.is_none_or(|d| Instant::now() < d)
                && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
            {
                outcome.record(ep.call().await);
            }
            outcome
        }));
    }
    let mut outcome = Outcome::default();
    for t in tasks {
        outcome.merge(t.await.expect("worker"));
    }
    Throughput { rate: outcome.ok as f64 / start.elapsed().as_secs_f64(), outcome, usage: meters.stop() }
}
