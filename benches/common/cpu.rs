//! CPU accounting from /proc: per process, and for the whole machine (to see who else was busy).

use std::time::{Duration, Instant};

/// CPU time used so far by a process (user + system, `/proc/PID/stat` fields 14 and 15) or,
/// for `"machine"`, by all CPUs together (`/proc/stat`: everything but idle and iowait, steal
/// included). Linux counts both in USER_HZ = 100 ticks per second on every architecture.
pub fn cpu_time(pid: &str) -> Duration {
    let ticks: u64 = if pid == "machine" {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let line = stat.lines().next().unwrap_or("");
        let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
    } else {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name (field 2) may hold spaces; the fields after it are plain.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum()
    };
    Duration::from_millis(ticks * 10)
}

/// CPU used by a process between two points.
pub struct CpuMeter {
    pub pid: String,
    pub start: Duration,
}

impl CpuMeter {
    pub fn new(pid: impl ToString) -> CpuMeter {
        let pid = pid.to_string();
        CpuMeter { start: cpu_time(&pid), pid }
    }
    pub fn used(&self) -> Duration {
        cpu_time(&self.pid).saturating_sub(self.start)
    }
}

/// CPU used while one measurement runs: by this program (load generator and in-process
/// upstream), by the gateway process, and by everything else on the machine (other builds and
/// tests on a shared host make a run noisy; this says how much).
pub struct Meters {
    pub wall: Instant,
    pub own: CpuMeter,
    pub gateway: Option<CpuMeter>,
    /// Other processes that are part of the measurement (a stdio upstream).
    pub peers: Vec<CpuMeter>,
    pub machine: CpuMeter,
}

#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub own: Duration,
    pub gateway: Option<Duration>,
    /// Cores used on average by other processes during the measurement.
    pub others: f64,
}

impl Meters {
    pub fn start(gateway: Option<u32>, peers: &[u32]) -> Meters {
        Meters {
            wall: Instant::now(),
            own: CpuMeter::new("self"),
            gateway: gateway.map(CpuMeter::new),
            peers: peers.iter().map(CpuMeter::new).collect(),
            machine: CpuMeter::new("machine"),
        }
    }
    pub fn stop(&self) -> Usage {
        let (own, gateway) = (self.own.used(), self.gateway.as_ref().map(CpuMeter::used));
        let ours = own + gateway.unwrap_or_default() + self.peers.iter().map(CpuMeter::used).sum::<Duration>();
        let others = self.machine.used().saturating_sub(ours);
        Usage { own, gateway, others: others.as_secs_f64() / self.wall.elapsed().as_secs_f64() }
    }
}
