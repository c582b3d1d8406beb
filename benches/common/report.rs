//! Turning measurements into progress lines, table rows and warnings.

use super::cpu::Usage;
use super::load::{Latency, Outcome, Throughput};
use std::time::Duration;

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Failed calls anywhere make the whole run fail; the first error of each row is kept.
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    pub fn check(&mut self, row: &str, outcome: &Outcome) {
        if outcome.failed > 0 || outcome.ok == 0 {
            self.0.push(format!(
                "{row}: {} of {} calls failed; first error: {}",
                outcome.failed,
                outcome.ok + outcome.failed,
                outcome.first_error.as_deref().unwrap_or("no successful call")
            ));
        }
    }
}

pub struct Table(pub Vec<[String; 4]>);

impl Table {
    pub fn row(
        &mut self,
        what: impl Into<String>,
        direct: impl Into<String>,
        via: impl Into<String>,
        added: impl Into<String>,
    ) {
        self.0.push([what.into(), direct.into(), via.into(), added.into()]);
    }
    pub fn print(&self) {
        println!("| measurement | direct | through the gateway | gateway adds (gateway CPU per call) |");
        println!("|---|---:|---:|---:|");
        for r in &self.0 {
            println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        }
    }
}

pub fn lat(l: &Latency) -> String {
    format!("p50 {:.0} µs · p99 {:.0} µs", us(l.p50), us(l.p99))
}

pub fn added(direct: &Latency, via: &Latency) -> String {
    format!("p50 {:+.0} µs · p99 {:+.0} µs", us(via.p50) - us(direct.p50), us(via.p99) - us(direct.p99))
}

/// CPU per successful call: (gateway, this program).
pub fn per_call(u: &Usage, o: &Outcome) -> (Option<Duration>, Duration) {
    let n = o.ok.max(1) as u32;
    (u.gateway.map(|g| g / n), u.own / n)
}

/// What a row cost in CPU, and how busy the rest of the machine was meanwhile.
pub fn cpu_note(u: &Usage, o: &Outcome) -> String {
    let (gateway, own) = per_call(u, o);
    let gateway = gateway.map(|g| format!("gateway {:.0} µs/call, ", us(g))).unwrap_or_default();
    format!("CPU: {gateway}bench process {:.0} µs/call, other processes {:.2} cores", us(own), u.others)
}

/// Runs during which other processes used more than a tenth of a core.
#[derive(Default)]
pub struct Noise(pub Vec<String>);

impl Noise {
    pub fn check(&mut self, row: &str, u: &Usage) {
        if u.others > 0.1 {
            self.0.push(format!("{row}: other processes used {:.2} cores", u.others));
        }
    }
}

/// Progress on stderr as each row finishes (the table comes at the end, on stdout).
pub fn report_latency(fail: &mut Failures, noise: &mut Noise, what: &str, name: &str, l: &Latency) {
    let row = format!("{what}, {name}");
    fail.check(&row, &l.outcome);
    noise.check(&row, &l.usage);
    eprintln!(
        "  {row}: {} calls at {:.0}/s, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {}",
        l.outcome.ok,
        l.rate,
        us(l.p50),
        us(l.p99),
        us(l.max),
        cpu_note(&l.usage, &l.outcome)
    );
}

pub fn report_throughput(fail: &mut Failures, noise: &mut Noise, what: &str, name: &str, t: &Throughput) {
    let row = format!("{what}, {name}");
    fail.check(&row, &t.outcome);
    noise.check(&row, &t.usage);
    eprintln!("  {row}: {:.0} calls/s ({} ok); {}", t.rate, t.outcome.ok, cpu_note(&t.usage, &t.outcome));
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} CPUs ({model})")
}
