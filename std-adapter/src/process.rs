//! Standard process metrics with their conventional names, read from `/proc` on Linux:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`, `process_threads`.
//!
//! Values are refreshed by [`ProcessMetrics::refresh`] (called before each scrape), never on the
//! metric hot path. On other systems they stay 0 and [`ProcessMetrics::supported`] is false.

use vitals_core::{FloatGauge, Gauge, Kind};

use crate::registry::{RegistryBuilder, RegistryError};

/// The process metrics.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    /// `process_cpu_seconds_total`: user + system CPU time.
    pub cpu_seconds: FloatGauge,
    /// `process_resident_memory_bytes`.
    pub resident_memory: Gauge,
    /// `process_virtual_memory_bytes`.
    pub virtual_memory: Gauge,
    /// `process_open_fds`.
    pub open_fds: Gauge,
    /// `process_max_fds`.
    pub max_fds: Gauge,
    /// `process_start_time_seconds`: since the Unix epoch.
    pub start_time: FloatGauge,
    /// `process_threads`.
    pub threads: Gauge,
}

/// The rate of the clock ticks in which `/proc` reports CPU and start times (USER_HZ), from the
/// OS (`sysconf(_SC_CLK_TCK)`); `None` when the OS does not say.
#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> Option<f64> {
    Some(rustix::param::clock_ticks_per_second())
        .filter(|&t| t > 0)
        .map(|t| t as f64)
}

#[cfg(not(target_os = "linux"))]
fn clock_ticks_per_second() -> Option<f64> {
    None
}

impl ProcessMetrics {
    /// Zeroed metrics; call [`refresh`](Self::refresh) to read them.
    pub const fn new() -> Self {
        ProcessMetrics {
            cpu_seconds: FloatGauge::new(),
            resident_memory: Gauge::new(),
            virtual_memory: Gauge::new(),
            open_fds: Gauge::new(),
            max_fds: Gauge::new(),
            start_time: FloatGauge::new(),
            threads: Gauge::new(),
        }
    }

    /// Whether this system provides the values (Linux `/proc`).
    pub fn supported() -> bool {
        cfg!(target_os = "linux") && std::path::Path::new("/proc/self/stat").exists()
    }

    /// Registers every process metric under its conventional name.
    pub fn register(&'static self, b: &mut RegistryBuilder) -> Result<(), RegistryError> {
        b.register_dyn(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Some("seconds"),
            Kind::Counter,
            &self.cpu_seconds,
        )?;
        b.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Some("bytes"),
            &self.resident_memory,
        )?;
        b.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Some("bytes"),
            &self.virtual_memory,
        )?;
        b.register(
            "process_open_fds",
            "Number of open file descriptors.",
            None,
            &self.open_fds,
        )?;
        b.register(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            None,
            &self.max_fds,
        )?;
        b.register_dyn(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Some("seconds"),
            Kind::Gauge,
            &self.start_time,
        )?;
        b.register(
            "process_threads",
            "Number of OS threads in the process.",
            None,
            &self.threads,
        )?;
        Ok(())
    }

    /// Reads the current values from `/proc`. Values that cannot be read keep their last value.
    pub fn refresh(&self) {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some(s) = parse_stat(&stat) {
                self.threads.set(s.threads);
                self.virtual_memory.set(s.vsize);
                if let Some(hz) = clock_ticks_per_second() {
                    self.cpu_seconds.set((s.utime + s.stime) as f64 / hz);
                    if let Some(btime) = boot_time() {
                        self.start_time.set(btime as f64 + s.starttime as f64 / hz);
                    }
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(kb) = status_kb(&status, "VmRSS:") {
                self.resident_memory.set(kb * 1024);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            if let Some(max) = max_open_files(&limits) {
                self.max_fds.set(max);
            }
        }
    }
}

struct Stat {
    utime: u64,
    stime: u64,
    threads: i64,
    starttime: u64,
    vsize: i64,
}

/// Fields of `/proc/self/stat` after the parenthesised command name (which may contain spaces).
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field n is f[n - 3].
    let field = |n: usize| f.get(n - 3).copied();
    Some(Stat {
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        threads: field(20)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
        vsize: field(23)?.parse().ok()?,
    })
}

fn status_kb(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "42 (my (odd) proc) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 7 0 12345 1048576 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.utime, s.stime, s.threads, s.starttime, s.vsize),
            (250, 50, 7, 12345, 1_048_576)
        );
        assert_eq!(
            status_kb("Name: x\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    /// On Linux the values must be there: no early return that would pass without reading.
    #[cfg(target_os = "linux")]
    #[test]
    fn refresh_reads_this_process() {
        assert!(ProcessMetrics::supported());
        let p = ProcessMetrics::new();
        p.refresh();
        assert!(p.resident_memory.get() > 0);
        assert!(p.open_fds.get() > 0);
        assert!(p.threads.get() >= 1);
        assert!(p.start_time.get() > 1_000_000_000.0);
    }

    /// CPU seconds are the stat line's ticks divided by the OS's tick rate, read independently
    /// here with `getconf CLK_TCK` (a build that assumes another rate fails on this machine).
    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_seconds_use_the_os_clock_tick_rate() {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf CLK_TCK");
        let hz: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a rate");
        let ticks = || {
            let s = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
            (s.utime + s.stime) as f64
        };
        // Burn some CPU so that the count is not 0.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let p = ProcessMetrics::new();
        let before = ticks();
        p.refresh();
        let after = ticks();
        let got = p.cpu_seconds.get();
        assert!(
            before / hz <= got && got <= after / hz,
            "cpu seconds {got}, ticks {before}..{after} at {hz} per second"
        );
        assert!(before > 0.0);
    }
}
