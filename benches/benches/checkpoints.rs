//! Checkpoints (issue 14): per gzip blob, the reconstruction data with and without checkpoints,
//! the wall time of one uncached whole-blob read on one core (`taskset -c 0`) and on all, and
//! the time to the first byte of an uncached range near the blob's end, with the steps each
//! read rebuilt.
//!
//! Inputs: the files named in `CHECKPOINT_INPUTS` (`:`-separated), else the `.gz` files of
//! `$GO_GZIP_FIXTURES`. Each is put into a fresh store (no blob cache); the reads run in child
//! processes of this binary opening the store read-only, so that the one-core run has a rayon
//! pool of one thread; each is the best of `CHECKPOINT_ROUNDS` (default 3) on a shared machine,
//! whose load is printed, with the CPU seconds the read took (so that a speedup lost to other
//! processes shows as wall time above CPU time over cores). Run:
//! `cargo bench -p airlock-benches --bench checkpoints`.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use airlock_benches::measure::cpu_seconds;
use airlock_regzip::{Event, Limits, Splitter, choose_splitter};
use airlock_store::{Access, Digest, PutOptions, Store, StoreOptions};

/// Set in a child: `whole` or `range`, the store directory, the digest.
const CHILD: &str = "CHECKPOINT_BENCH_CHILD";
/// Bytes before the end where the range starts.
const TAIL_BYTES: u64 = 1 << 20;

fn main() {
    if let Ok(job) = std::env::var(CHILD) {
        child(&job);
        return;
    }
    let inputs = inputs();
    let rounds: usize = std::env::var("CHECKPOINT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} cores, load average {}; best of {rounds} rounds",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<16} {:>11} {:>15} {:>15} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11} {:>13}",
        "blob",
        "gzip B",
        "data before",
        "data after",
        "1 core",
        "2 cores",
        "cpu",
        "all",
        "speedup",
        "range 1st B",
        "steps range/all"
    );
    for path in inputs {
        let gz = std::fs::read(&path).expect("input");
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let (Some(before), Some(after)) = (
            data_bytes(&gz, 0),
            data_bytes(&gz, airlock_regzip::CHECKPOINT_OUT_BYTES),
        ) else {
            // Kept as opaque bytes by the store: nothing is rebuilt (issue 20's encoders).
            println!("{name:20} not rebuilt: its encoder is not modelled (stored opaque)");
            continue;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = Digest::sha256(&gz);
        {
            let store = Store::open(dir.path(), opts(Access::ReadWrite)).expect("store");
            store
                .put_blob(&d, &gz[..], PutOptions::default())
                .expect("put");
        }
        // Best wall time of the rounds, with that round's CPU seconds and steps.
        let run = |job: &str, cores: Option<&str>| -> (f64, f64, u64) {
            (0..rounds).map(|_| spawn(job, dir.path(), &d, cores)).fold(
                (f64::MAX, 0.0, 0),
                |best, r| if r.0 < best.0 { r } else { best },
            )
        };
        let (one, _, _) = run("whole", Some("0"));
        let (two, cpu, _) = run("whole", Some("0,1"));
        let (all, _, steps_all) = run("whole", None);
        let (first, _, steps_range) = run("range", None);
        let pct = |n: u64| format!("{n} ({:.3}%)", 100.0 * n as f64 / gz.len() as f64);
        println!(
            "{name:<16} {:>11} {:>15} {:>15} {one:>7.2}s {two:>7.2}s {cpu:>7.2}s {all:>7.2}s {:>6.2}x \
             {first:>10.3}s {:>13}",
            gz.len(),
            pct(before),
            pct(after),
            one / two,
            format!("{steps_range}/{steps_all}")
        );
    }
}

fn opts(access: Access) -> StoreOptions {
    StoreOptions {
        access,
        blob_cache_size: 0,
        ..StoreOptions::default()
    }
}

fn inputs() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("CHECKPOINT_INPUTS") {
        return std::env::split_paths(&list).collect();
    }
    let Some(dir) = std::env::var_os("GO_GZIP_FIXTURES") else {
        eprintln!("set CHECKPOINT_INPUTS or GO_GZIP_FIXTURES: nothing to measure");
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture directory")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .collect();
    v.sort();
    v
}

/// Reconstruction bytes (steps' data and checkpoints) of a split with checkpoints about every
/// `every` bytes (0: none), as the store's splitter is chosen; `None` when the splitter refuses
/// the stream (an encoder it does not model).
fn data_bytes(gz: &[u8], every: u64) -> Option<u64> {
    let head = &gz[..gz.len().min(airlock_regzip::DETECT_BYTES)];
    let mut sp: Box<dyn Splitter> =
        choose_splitter(head, head.len() == gz.len(), Limits::UNLIMITED);
    if every != airlock_regzip::CHECKPOINT_OUT_BYTES {
        sp = match airlock_regzip::detect_producer(head, head.len() == gz.len()) {
            Some(p) => Box::new(
                airlock_regzip::GoSplitter::new(p, Limits::UNLIMITED).with_checkpoints(every),
            ),
            None => Box::new(
                airlock_regzip::PreflateSplitter::new(Limits::UNLIMITED).with_checkpoints(every),
            ),
        };
    }
    let mut n = 0u64;
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Step { data, .. } => n += data.len() as u64,
            Event::Checkpoint(state) => n += state.len() as u64,
            Event::Raw(_) | Event::Plain(_) => {}
        }
        true
    };
    for piece in gz.chunks(1 << 20) {
        sp.feed(piece, &mut sink).ok()?;
    }
    sp.finish(&mut sink).ok()?;
    Some(n)
}

/// Runs one timed read in a child process (on the given cores); its wall and CPU seconds and
/// steps rebuilt.
fn spawn(job: &str, store: &Path, d: &Digest, cores: Option<&str>) -> (f64, f64, u64) {
    let exe = std::env::current_exe().expect("this binary");
    let mut cmd = match cores {
        Some(list) => {
            let mut c = Command::new("taskset");
            c.args(["-c", list]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = cmd
        .env(CHILD, format!("{job} {} {d}", store.display()))
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    let secs = f.next().and_then(|s| s.parse().ok()).expect("seconds");
    let cpu = f.next().and_then(|s| s.parse().ok()).expect("cpu seconds");
    let steps = f.next().and_then(|s| s.parse().ok()).expect("steps");
    (secs, cpu, steps)
}

/// In a child: one read, timed; prints wall and CPU seconds and steps rebuilt.
fn child(job: &str) {
    let mut f = job.split(' ');
    let (what, dir, d) = (f.next(), f.next(), f.next());
    let (Some(what), Some(dir), Some(d)) = (what, dir, d) else {
        panic!("bad job {job:?}");
    };
    let d: Digest = d.parse().expect("digest");
    let store = Store::open(Path::new(dir), opts(Access::ReadOnly)).expect("store");
    let size = store.stat_blob(&d).expect("stat").expect("blob").size;
    let (t, c0) = (Instant::now(), cpu_seconds());
    let (secs, steps) = match what {
        "whole" => {
            let mut r = store.open_blob(&d).expect("open");
            let mut out = Vec::with_capacity(size as usize);
            r.read_to_end(&mut out).expect("read");
            assert_eq!(out.len() as u64, size);
            (t.elapsed().as_secs_f64(), r.steps_rebuilt())
        }
        _ => {
            let start = size.saturating_sub(TAIL_BYTES);
            let mut r = store.open_blob_range(&d, start..size).expect("open");
            let mut first = [0u8; 1];
            r.read_exact(&mut first).expect("read");
            (t.elapsed().as_secs_f64(), r.steps_rebuilt())
        }
    };
    println!("{secs} {} {steps}", cpu_seconds() - c0);
}
