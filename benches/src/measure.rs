//! CPU time of this process, of its waited-for children and of another process, from Linux's
//! `/proc/PID/stat` (user + system, at the kernel's 100 Hz clock tick).

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

#[cfg(test)]
mod tests {
    use super::*;

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
