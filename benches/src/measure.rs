//! CPU time of this process, of its waited-for children and of another process, from Linux's
//! `/proc/PID/stat` (user + system, at the kernel's 100 Hz clock tick), and the peak resident
//! memory of a process from `/proc/PID/status`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// Fields `first` and `first + 1` of `/proc/PID/stat` (numbered from 1 as in proc(5)) in
/// seconds; 0 where unreadable.
fn stat_seconds(pid: &str, first: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The name (field 2) may hold spaces; fields after it start at 3.
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    (at(first) + at(first + 1)) / 100.0
}

/// CPU seconds this process used so far (utime + stime, fields 14 and 15).
pub fn cpu_seconds() -> f64 {
    stat_seconds("self", 14)
}

/// CPU seconds of this process's children that have been waited for (fields 16 and 17).
pub fn children_cpu_seconds() -> f64 {
    stat_seconds("self", 16)
}

/// CPU seconds process `pid` used so far.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat_seconds(&pid.to_string(), 14)
}

/// Peak resident set size (`VmHWM`) of process `pid` in bytes; None once it has exited.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmHWM").map(|kib| kib * 1024)
}

/// Lowers process `pid`'s peak RSS to its current RSS (writes 5 to `/proc/PID/clear_refs`, Linux
/// 4.0), so a later [`peak_rss_bytes`] is the peak of what came after; false if refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The value in KiB of a `NAME:   1234 kB` line of `/proc/PID/status`.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// How often [`PeakSampler`] reads a process's peak RSS: it misses at most what the process
/// grows in its last interval.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Samples the peak RSS of a process that will exit (a child whose peak `/proc` cannot tell
/// once it is gone) until it exits or [`PeakSampler::finish`] is called.
#[derive(Debug)]
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl PeakSampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(Ordering::Relaxed) {
                // A zombie's status has no VmHWM line: the process is gone.
                let Some(now) = peak_rss_bytes(pid) else {
                    break;
                };
                peak = peak.max(now);
                std::thread::sleep(SAMPLE_INTERVAL);
            }
            peak
        });
        PeakSampler { stop, thread }
    }

    /// The highest peak RSS seen, in bytes; call it after the process was waited for.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_to_kib() {
        let status = "Name:\tairlock\nVmPeak:\t  900 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(5120));
        assert_eq!(status_kib(status, "VmRSS"), Some(4000));
        assert_eq!(status_kib(status, "VmSwap"), None);
        let own = peak_rss_bytes(std::process::id()).expect("our own status");
        assert!(own > 1024 * 1024, "a test process peaks at {own} B");
    }

    #[test]
    fn the_sampler_sees_a_child_peak() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn sleep");
        let sampler = PeakSampler::start(child.id());
        child.wait().expect("wait sleep");
        assert!(sampler.finish() > 0);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed().as_millis() < 100 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = cpu_seconds() - before;
        assert!(used > 0.0, "100 ms of spinning counted {used} s");
        // Read later, by pid: never less.
        assert!(process_cpu_seconds(std::process::id()) + 1e-9 >= before + used);
    }
}
