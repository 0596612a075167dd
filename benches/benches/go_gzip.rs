//! gzip layers made by Go (issue 6): per producer and level, the reconstruction data's share
//! of the compressed size, and MB/s of compressed output per core to split (a put into a fresh
//! store: split, verify, chunk, pack) and to rebuild (a get without blob cache).
//!
//! Baseline: the producer itself, compressing the same input in the same script run (the
//! `go-gzip time` command of tools/go-gzip, when the fixture directory holds that binary), in
//! MB/s of compressed output per core; `rebuild/enc` is the rebuild's speed over the encoder's.
//!
//! Inputs: the `.gz` files in `$GO_GZIP_FIXTURES` (what CI's tools/go-gzip/make-fixtures.sh
//! writes), else a fresh `make-fixtures.sh large` run when Go is installed, else the small
//! committed fixtures. Per core: process CPU time from /proc/self/stat.
//!
//! `GO_GZIP_ONLY=<prefix>` measures only the fixtures whose name starts with it, and
//! `GO_GZIP_ROUNDS=<n>` rebuilds each n times (default 3; more for a profiler).

use std::{
    hint::black_box,
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use airlock_benches::measure::cpu_seconds;
use airlock_store::{Digest, PutOptions, Store, StoreOptions, StoredAs};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The fixture directory and whether it is a temporary one of ours.
fn fixtures() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("GO_GZIP_FIXTURES") {
        return (PathBuf::from(dir), None);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let made = std::process::Command::new("bash")
        .arg(root.join("tools/go-gzip/make-fixtures.sh"))
        .arg(tmp.path())
        .arg("large")
        .status()
        .is_ok_and(|s| s.success());
    if made {
        return (tmp.path().to_path_buf(), Some(tmp));
    }
    eprintln!("Go is not installed: measuring the small committed fixtures");
    (root.join("store/tests/fixtures/go"), None)
}

/// The gzip fixtures, by name, and the go-gzip binary that made them if it is still there.
fn inputs() -> (Vec<(String, Vec<u8>)>, Option<Encoder>) {
    let (dir, keep) = fixtures();
    let encoder = Some(dir.join("go-gzip"))
        .filter(|p| p.is_file())
        .map(|path| Encoder { path, _dir: keep });
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            name.ends_with(".gz")
                .then(|| {
                    Some((
                        name.trim_end_matches(".gz").to_string(),
                        std::fs::read(&p).ok()?,
                    ))
                })
                .flatten()
        })
        .collect();
    if let Some(only) = std::env::var_os("GO_GZIP_ONLY") {
        let only = only.to_string_lossy().into_owned();
        v.retain(|(n, _)| n.starts_with(&only));
    }
    v.sort();
    (v, encoder)
}

/// The go-gzip binary of tools/go-gzip (and the temporary directory holding it, if ours).
struct Encoder {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Encoder {
    /// CPU seconds per round the producer of fixture `name` takes to compress `gz`'s content
    /// again, or `None` if the name does not say the producer or the output differs in size.
    fn seconds(&self, name: &str, gz: &[u8]) -> Option<f64> {
        // Fixture names: gzip_LEVEL, gzip_LEVEL_flushN, pgzip_LEVEL_BLOCK.
        let mut args: Vec<String> = name.split('_').map(str::to_string).collect();
        if let Some(flush) = args.get_mut(2) {
            *flush = flush.trim_start_matches("flush").to_string();
        }
        let mut input = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut input)
            .ok()?;
        let mut child = std::process::Command::new(&self.path)
            .args(["time", "5"])
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().ok()?;
        feeder.join().ok()?.ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let mut fields = text.split_whitespace();
        let seconds: f64 = fields.next()?.parse().ok()?;
        let size: usize = fields.next()?.parse().ok()?;
        (out.status.success() && size == gz.len()).then_some(seconds)
    }
}

fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = StoreOptions {
        blob_cache_size: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts).expect("open store");
    (dir, store)
}

fn read_blob(store: &Store, d: &Digest) -> usize {
    let mut out = Vec::new();
    store
        .open_blob(d)
        .expect("open blob")
        .read_to_end(&mut out)
        .expect("read blob");
    out.len()
}

/// Prints the table once: producer/level, share, split and rebuild MB/s per core, and the
/// producer's own MB/s per core with the rebuild's ratio to it.
fn table(inputs: &[(String, Vec<u8>)], encoder: Option<&Encoder>) {
    println!(
        "{:<22} {:>10} {:>9} {:>10} {:>12} {:>14} {:>14} {:>12}",
        "producer_level_block",
        "gzip B",
        "stored",
        "recon %",
        "split MB/s",
        "rebuild MB/s",
        "encoder MB/s",
        "rebuild/enc"
    );
    for (name, gz) in inputs {
        let (_dir, store) = fresh_store();
        let d = Digest::sha256(gz);
        let c0 = cpu_seconds();
        store
            .put_blob(&d, &gz[..], PutOptions::default())
            .expect("put");
        let split = cpu_seconds() - c0;
        let stat = store.stat_blob(&d).expect("stat").expect("stored");
        let du = store.du().expect("du");
        let c0 = cpu_seconds();
        let mut n = 0;
        let mut rounds = 0;
        let want: u32 = std::env::var("GO_GZIP_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        while rounds < want.max(1) {
            n += read_blob(&store, &d);
            rounds += 1;
        }
        let rebuild = (cpu_seconds() - c0) / f64::from(rounds);
        assert_eq!(n, gz.len() * rounds as usize);
        let mb = gz.len() as f64 / 1e6;
        let how = match stat.stored_as {
            StoredAs::Rebuilt => "rebuilt".to_string(),
            other => format!("{other:?}"),
        };
        let rebuild_mbps = mb / rebuild.max(0.01);
        let (enc, ratio) = match encoder.and_then(|e| e.seconds(name, gz)) {
            Some(secs) => {
                let enc = mb / secs.max(0.001);
                (format!("{enc:.1}"), format!("{:.2}x", rebuild_mbps / enc))
            }
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{name:<22} {:>10} {how:>9} {:>10.3} {:>12.1} {rebuild_mbps:>14.1} {enc:>14} {ratio:>12}",
            gz.len(),
            100.0 * du.rebuild_bytes as f64 / gz.len() as f64,
            mb / split.max(0.01),
        );
    }
}

fn bench(c: &mut Criterion) {
    let (inputs, encoder) = inputs();
    table(&inputs, encoder.as_ref());
    // Criterion samples the rebuild of the default-level Go layer.
    let Some((name, gz)) = inputs
        .iter()
        .find(|(n, _)| n.starts_with("gzip_6") || n.starts_with("gzip_-1"))
    else {
        return;
    };
    let (_dir, store) = fresh_store();
    let d = Digest::sha256(gz);
    store
        .put_blob(&d, &gz[..], PutOptions::default())
        .expect("put");
    let mut g = c.benchmark_group("go_gzip");
    g.throughput(Throughput::Bytes(gz.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function(format!("rebuild {name}"), |b| {
        b.iter(|| black_box(read_blob(&store, &d)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
