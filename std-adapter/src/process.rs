//! Standard process metrics with their conventional names, read from `/proc` on Linux:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`, `process_threads`.
//!
//! Values are refreshed by [`ProcessMetrics::refresh`] (called before each scrape), never on the
//! metric hot path. On other systems they stay 0 and [`ProcessMetrics::supported`] is false.

use std::sync::atomic::{AtomicU64, Ordering};
use vitals_core::labels::Labels;
use vitals_core::{Collect, Gauge, Kind, Series, Value};

use crate::registry::{RegistryBuilder, RegistryError};

/// One float sample read at render time (for values that are floats but not settable gauges,
/// such as CPU seconds, which is a counter).
#[derive(Debug, Default)]
pub struct FloatCell {
    bits: AtomicU64,
}

impl FloatCell {
    /// A cell holding 0.0.
    pub const fn new() -> Self {
        FloatCell {
            bits: AtomicU64::new(0),
        }
    }

    /// Stores `v`.
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The stored value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Collect for FloatCell {
    fn series_len(&self) -> usize {
        1
    }
    fn series(&self, index: usize) -> Option<Series<'_>> {
        (index == 0).then(|| Series {
            labels: Labels::None,
            value: Value::Float(self.get()),
        })
    }
}

/// The process metrics.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    /// `process_cpu_seconds_total`: user + system CPU time.
    pub cpu_seconds: FloatCell,
    /// `process_resident_memory_bytes`.
    pub resident_memory: Gauge,
    /// `process_virtual_memory_bytes`.
    pub virtual_memory: Gauge,
    /// `process_open_fds`.
    pub open_fds: Gauge,
    /// `process_max_fds`.
    pub max_fds: Gauge,
    /// `process_start_time_seconds`: since the Unix epoch.
    pub start_time: FloatCell,
    /// `process_threads`.
    pub threads: Gauge,
}

/// Linux reports CPU times in USER_HZ ticks, which the kernel ABI fixes at 100 per second.
const USER_HZ: f64 = 100.0;

impl ProcessMetrics {
    /// Zeroed metrics; call [`refresh`](Self::refresh) to read them.
    pub const fn new() -> Self {
        ProcessMetrics {
            cpu_seconds: FloatCell::new(),
            resident_memory: Gauge::new(),
            virtual_memory: Gauge::new(),
            open_fds: Gauge::new(),
            max_fds: Gauge::new(),
            start_time: FloatCell::new(),
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
                self.cpu_seconds.set((s.utime + s.stime) as f64 / USER_HZ);
                self.threads.set(s.threads);
                self.virtual_memory.set(s.vsize);
                if let Some(btime) = boot_time() {
                    self.start_time
                        .set(btime as f64 + s.starttime as f64 / USER_HZ);
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

    #[test]
    fn refresh_reads_this_process() {
        if !ProcessMetrics::supported() {
            return;
        }
        let p = ProcessMetrics::new();
        p.refresh();
        assert!(p.resident_memory.get() > 0);
        assert!(p.open_fds.get() > 0);
        assert!(p.threads.get() >= 1);
        assert!(p.start_time.get() > 1_000_000_000.0);
    }
}
