//! Crash safety: a writer process is killed with SIGKILL at random points, many times over
//! one store; after each kill the store reopens, verifies clean, and every blob the writer
//! acknowledged reads back byte-exact.
//!
//! The writer is this test binary itself, re-executed to run [`writer_child`] with
//! `CRASH_DIR_ENV` set. It puts seeded blobs from two threads (packs are small so they seal
//! often), links each as a manifest and prints `ACK <digest> <kind> <seed>` once that
//! returned; it also stores garbage and runs GC now and then, so kills land inside GC too.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use airlock_store::{Digest, GcOptions, RepoChange, Store, StoreOptions, Verify};
use rand::Rng;

use crate::common::*;

const CRASH_DIR_ENV: &str = "AIRLOCK_STORE_CRASH_DIR";
const CRASH_SEED_ENV: &str = "AIRLOCK_STORE_CRASH_SEED";
const ITERATIONS: u64 = 40;

fn opts() -> StoreOptions {
    StoreOptions {
        pack_size: 96 * 1024,
        ..small_opts(96 * 1024)
    }
}

/// The content the writer puts for (kind, seed); the parent rebuilds it to compare.
fn content(kind: u8, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    match kind {
        // Random bytes, mostly small.
        0 => seeded(seed, r.gen_range(0..60_000)),
        // A tar whose files come from a small pool, so versions share chunks.
        1 => {
            let files: Vec<TarFile> = (0..r.gen_range(1..8))
                .map(|i| {
                    let pick = r.gen_range(0..20u64);
                    TarFile {
                        path: format!("f{i}-{pick}"),
                        data: seeded(500 + pick, 1000 + pick as usize * 2500),
                        mtime: r.gen_range(0..3),
                    }
                })
                .collect();
            tar_of(&files)
        }
        // Compressible text, sometimes past several frames.
        _ => text(seed, r.gen_range(1..120_000)),
    }
}

/// Runs only in the child process: puts, links and acknowledges until killed.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let base: u64 = std::env::var(CRASH_SEED_ENV).unwrap().parse().unwrap();
    let store = Store::open(Path::new(&dir), opts()).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let seed = base + t * 1_000_000 + n;
                    let kind = (seed % 3) as u8;
                    let data = content(kind, seed);
                    let (d, _) = put(&store, &data);
                    // Unlinked garbage for GC to find.
                    if n % 4 == 1 {
                        put(&store, &seeded(seed ^ 0x5555, 20_000));
                    }
                    store
                        .apply_repo_changes(&[
                            RepoChange::LinkManifest {
                                repo: format!("crash/{t}"),
                                digest: d.clone(),
                                children: vec![],
                                subject: None,
                                media_type: "application/octet-stream".into(),
                            },
                            RepoChange::SetTag {
                                repo: format!("crash/{t}"),
                                tag: format!("t{}", n % 3),
                                digest: d.clone(),
                            },
                        ])
                        .unwrap();
                    {
                        let mut o = out.lock().unwrap();
                        writeln!(o, "ACK {d} {kind} {seed}").unwrap();
                        o.flush().unwrap();
                    }
                    if t == 0 && n % 6 == 5 {
                        let no_grace = GcOptions {
                            upload_grace: Duration::ZERO,
                            keep_tag_history: Duration::ZERO,
                            keep_app_versions: 3,
                        };
                        let plan = store.plan_gc(no_grace).unwrap();
                        store.apply_gc(&plan).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut r = rng(180);
    let mut acked: BTreeMap<Digest, (u8, u64)> = BTreeMap::new();
    let started = Instant::now();
    let mut kills_after_ack = 0;
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .env(CRASH_SEED_ENV, (iteration * 10_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let collector = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Half the kills at any moment (start-up and recovery included), half once the
        // writer is well under way.
        if iteration % 2 == 1 {
            let t0 = Instant::now();
            while !lines.lock().unwrap().iter().any(|l| l.starts_with("ACK "))
                && t0.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            kills_after_ack += 1;
        }
        std::thread::sleep(Duration::from_millis(r.gen_range(0..250)));
        child.kill().unwrap();
        child.wait().unwrap();
        collector.join().unwrap();
        let mut fresh = Vec::new();
        for line in lines.lock().unwrap().iter() {
            let parts: Vec<_> = line.split(' ').collect();
            if let ["ACK", d, kind, seed] = parts[..] {
                let d: Digest = d.parse().unwrap();
                acked.insert(d.clone(), (kind.parse().unwrap(), seed.parse().unwrap()));
                fresh.push(d);
            }
        }

        // Every third time a reader comes first: it opens (repairing the index as redb
        // requires after a crash) and, packs not yet cut back, sees a sound store.
        if iteration % 3 == 0 {
            let ro = Store::open(
                dir.path(),
                StoreOptions {
                    access: airlock_store::Access::ReadOnly,
                    ..opts()
                },
            )
            .unwrap_or_else(|e| panic!("iteration {iteration}: read-only open: {e}"));
            let report = ro.verify(Verify::Quick).unwrap();
            assert!(
                report.is_clean(),
                "iteration {iteration}, read-only: {:#?}",
                report.defects
            );
        }
        let store = Store::open(dir.path(), opts())
            .unwrap_or_else(|e| panic!("iteration {iteration}: reopening: {e}"));
        let report = store.verify(Verify::Full).unwrap();
        assert!(
            report.is_clean(),
            "iteration {iteration}: {:#?}",
            report.defects
        );
        // Verify rebuilt every stored blob and checked its digest; every blob acknowledged so
        // far must be among them. This round's are read back and compared too, and all of
        // them after the last round.
        for d in acked.keys() {
            assert!(
                store.has_blob(d).unwrap(),
                "iteration {iteration}: acknowledged {d} is gone"
            );
        }
        let last = iteration + 1 == ITERATIONS;
        let check: Vec<&Digest> = if last {
            acked.keys().collect()
        } else {
            fresh.iter().collect()
        };
        for d in check {
            let (kind, seed) = acked[d];
            let data = content(kind, seed);
            assert_eq!(&Digest::sha256(&data), d);
            let got = read_all(&store, d)
                .unwrap_or_else(|e| panic!("iteration {iteration}: acknowledged {d}: {e}"));
            assert!(
                got == data,
                "iteration {iteration}: {d} reads back wrong bytes"
            );
        }
    }
    assert!(
        acked.len() as u64 >= ITERATIONS / 2,
        "{} blobs acknowledged",
        acked.len()
    );
    assert!(kills_after_ack > 0);
    eprintln!(
        "{ITERATIONS} kills, {} blobs acknowledged, {:?}",
        acked.len(),
        started.elapsed()
    );
}
