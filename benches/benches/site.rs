//! A site pays for small bundles once, not on every pull (issue 14): in one run, what a site
//! does with an airlock bundle against the blob-level path (a tar.zst of the OCI layout pushed
//! with skopeo into CNCF distribution, Debian's `docker-registry`, holding the same images).
//!
//! Workload ([`airlock_benches::release`]): N images over a shared base and two runtime layers,
//! each with an application layer of its own, gzip'd half by pgzip and half by Go's gzip -6
//! (through `tools/go-gzip`, built here with Debian's Go); v2 rebuilds the base and two
//! applications. Steps, each checked (tags, pulled and fetched digests):
//! 1. vendor: `airlock add -f` of v1 and v2, `airlock export` of v1 full and v2 `--since` v1;
//!    the baseline media: `tar | zstd -T0 -3` of v1's layout and of v2's new blobs;
//! 2. site import: `airlock import` of each bundle (wall, CPU, peak RSS) against extracting the
//!    tar.zst and `skopeo copy` of every image into distribution;
//! 3. containerd (its own daemon, a fresh root per pass) pulls every v1 image, one after
//!    another, from `airlock serve --read-only` and read-write over a fresh copy of the imported
//!    store (cold, then again: warm) and from distribution (twice);
//! 4. fan-out: concurrent fetchers each GET every layer blob in full;
//! 5. the first byte of a Range GET of the last MiB of the largest blob, uncached;
//! 6. one blob rebuilt on one core (`taskset -c 0`) and on all;
//! 7. `skopeo copy` of every v1 image into an empty registry, and the store's size after.
//!
//! Environment: `AIRLOCK_BENCH_SITE_MB` (v1's gzip'd layer bytes, default 450),
//! `AIRLOCK_BENCH_SITE_IMAGES` (10), `AIRLOCK_BENCH_SITE_FETCHERS` (8),
//! `AIRLOCK_BENCH_SITE_LEVEL` (export's zstd level; airlock's default when unset),
//! `AIRLOCK_BENCH_SITE_SNAPSHOTTER` (containerd's, default overlayfs), `AIRLOCK_BENCH_SITE_KEEP=1`
//! (keep the work directory, under `$TMPDIR`), `AIRLOCK_BENCH_SITE_ONLY=push` (step 7 alone, after
//! generating the release), `AIRLOCK_BIN`. Needs skopeo, containerd, ctr,
//! docker-registry, go (with golang-github-klauspost-pgzip-dev), zstd, tar and taskset; run as
//! root for overlayfs. Not a test: `cargo bench -p airlock-benches --bench site`.

use std::{
    cell::Cell,
    collections::{BTreeMap, HashSet},
    fs,
    io::{Read, Seek, SeekFrom},
    ops::Deref,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Instant,
};

use airlock_benches::{
    containerd::Containerd,
    fetch::{Wanted, fan_out, fetch_checked},
    gogzip::GoGzip,
    http::Client,
    measure::{PeakSampler, children_cpu_seconds},
    process::{airlock_bin, airlock_command, find_in_path, must},
    release::{self, APP_NAME, ReleaseSpec, Version},
    server::{Access, Airlock, Cores, Distribution, Server, copy_dir},
    table::Table,
};

/// The tail a Range GET asks for.
const RANGE_TAIL_BYTES: u64 = 1024 * 1024;

/// Tools the benchmark runs, found on `PATH`.
const TOOLS: [&str; 8] = [
    "skopeo",
    "containerd",
    "ctr",
    "docker-registry",
    "go",
    "zstd",
    "tar",
    "taskset",
];

#[path = "site/report.rs"]
mod report;
#[path = "site/steps.rs"]
mod steps;

use steps::Run;

fn main() {
    let missing: Vec<&str> = TOOLS
        .into_iter()
        .filter(|t| find_in_path(t).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!("site: skipped, not on PATH: {}", missing.join(", "));
        return;
    }
    let cfg = Config::from_env();
    let tmp = tempfile::Builder::new()
        .prefix("site")
        .tempdir()
        .expect("tempdir");
    let bench = Bench {
        bin: airlock_bin(),
        dir: tmp.path().to_owned(),
        cfg,
        next: Cell::new(0),
    };
    eprintln!("site: working in {}", bench.dir.display());
    let mut table = Table::new(&[50, 9, 9, 7, 9, 0]);
    report::facts(&mut table, &bench.cfg);

    let started = Instant::now();
    let say = |what: &str| eprintln!("site: {:7.1} s  {what}", started.elapsed().as_secs_f64());
    say("building go-gzip, generating the release");
    let go = GoGzip::build(&bench.path("go"));
    let spec = ReleaseSpec {
        seed: 14,
        images: bench.cfg.images,
        layer_bytes: bench.cfg.layer_mb * 1_000_000,
    };
    let blobs = bench.path("blobs");
    let (v1, v2) = release::generate(&spec, &go, &blobs);
    report::describe(&mut table, &v1, &v2);
    let layouts = Layouts::write(&bench, &blobs, &v1, &v2);
    if bench.cfg.only_push {
        say("push");
        steps::push(&mut table, &bench, &layouts.v1, &v1);
    } else {
        all_steps(&mut table, &bench, &blobs, &layouts, &v1, &v2, &say);
    }
    say("done");
    table.print();
    if bench.cfg.keep {
        eprintln!("site: kept {}", tmp.keep().display());
    }
}

/// Steps 1 to 7.
fn all_steps(
    table: &mut Table,
    bench: &Bench,
    blobs: &Path,
    layouts: &Layouts,
    v1: &Version,
    v2: &Version,
    say: &dyn Fn(&str),
) {
    say("vendor: add, export");
    let vendor = steps::vendor(bench, v1, v2);
    say("site: airlock import");
    let site = steps::import(bench, v1, v2);
    say("site: extract + skopeo copy into distribution");
    let distribution = steps::distribution_import(bench, layouts, v1, v2);
    steps::print_vendor_and_import(table, layouts, &vendor, &site, &distribution);

    say("containerd pulls");
    steps::pulls(table, bench, &site.v1_store, &distribution.v1_root, v1);
    say("fan-out");
    steps::fan_outs(table, bench, &site.v1_store, &distribution.v1_root, v1);
    say("Range GET, one blob on 1 core and on all");
    let biggest = steps::biggest(v1, None);
    steps::range(
        table,
        bench,
        &site.v1_store,
        &distribution.v1_root,
        &biggest,
        blobs,
    );
    steps::cores(table, bench, &site.v1_store, v1);
    say("push");
    steps::push(table, bench, &layouts.v1, v1);
}

/// Settings from the environment.
#[derive(Debug)]
pub struct Config {
    /// Target MB of v1's gzip'd layers.
    pub layer_mb: u64,
    /// Images in the release.
    pub images: usize,
    /// Concurrent fetchers of the fan-out.
    pub fetchers: usize,
    /// `airlock export --level`, when set.
    pub level: Option<String>,
    /// containerd's snapshotter.
    pub snapshotter: String,
    /// Keep the work directory.
    pub keep: bool,
    /// Run the push step alone.
    pub only_push: bool,
}

impl Config {
    fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
            })
        };
        Config {
            layer_mb: number("AIRLOCK_BENCH_SITE_MB", 450),
            images: number("AIRLOCK_BENCH_SITE_IMAGES", 10) as usize,
            fetchers: number("AIRLOCK_BENCH_SITE_FETCHERS", 8) as usize,
            level: var("AIRLOCK_BENCH_SITE_LEVEL"),
            snapshotter: var("AIRLOCK_BENCH_SITE_SNAPSHOTTER")
                .unwrap_or_else(|| "overlayfs".to_owned()),
            keep: var("AIRLOCK_BENCH_SITE_KEEP").is_some_and(|v| v != "0"),
            only_push: match var("AIRLOCK_BENCH_SITE_ONLY").as_deref() {
                None => false,
                Some("push") => true,
                Some(other) => panic!("AIRLOCK_BENCH_SITE_ONLY={other:?}: only `push` is known"),
            },
        }
    }
}

/// The work directory, the binary and the settings.
#[derive(Debug)]
pub struct Bench {
    bin: PathBuf,
    dir: PathBuf,
    cfg: Config,
    next: Cell<u32>,
}

impl Bench {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A new short name with `prefix` (containerd's socket path must stay short).
    fn fresh(&self, prefix: &str) -> PathBuf {
        self.next.set(self.next.get() + 1);
        self.path(&format!("{prefix}{}", self.next.get()))
    }

    fn airlock(&self, data: &Path, args: &[&str]) -> Command {
        let mut c = airlock_command(&self.bin, &[]);
        c.current_dir(&self.dir).arg("--data").arg(data).args(args);
        c
    }

    /// `airlock serve` over a fresh copy of the store at `from`.
    fn serve_copy(&self, from: &Path, access: Access, cores: Cores) -> Fresh<Airlock> {
        let data = copy_dir(from, &self.fresh("store-"));
        let log = data.with_extension("log");
        Fresh {
            server: Some(Airlock::start(&self.bin, &data, access, cores, &log)),
            dir: data,
        }
    }

    /// distribution over a fresh copy of the storage at `from`.
    fn distribution_copy(&self, from: &Path) -> Fresh<Distribution> {
        let dir = self.fresh("registry-");
        let root = copy_dir(from, &dir.join("root"));
        Fresh {
            server: Some(self.distribution(&root, &dir)),
            dir,
        }
    }

    fn distribution(&self, root: &Path, dir: &Path) -> Distribution {
        let bin = find_in_path("docker-registry").expect("docker-registry on PATH");
        Distribution::start(&bin, root, dir)
    }

    /// A containerd of its own, pulling every image of `v` from `server` one after another.
    fn pull_all(&self, server: &dyn Server, v: &Version) -> Run {
        let dir = self.fresh("cd");
        let daemon = Containerd::start(
            &find_in_path("containerd").expect("containerd"),
            &find_in_path("ctr").expect("ctr"),
            &dir,
        );
        let references: Vec<(String, &str)> = v
            .images
            .iter()
            .map(|i| {
                let r = format!("{}/{}:{}", server.addr(), i.repository(), v.tag());
                (r, i.manifest.digest.as_str())
            })
            .collect();
        let (_, run) = steps::measure(server, || {
            for (r, _) in &references {
                daemon.pull(r, &self.cfg.snapshotter);
            }
        });
        for (r, digest) in &references {
            assert_eq!(daemon.image_digest(r).as_deref(), Some(*digest), "{r}");
        }
        drop(daemon);
        let _ = fs::remove_dir_all(&dir);
        run
    }
}

/// A server over a directory of its own, removed after the server stops.
#[derive(Debug)]
pub struct Fresh<S> {
    server: Option<S>,
    dir: PathBuf,
}

impl<S> Deref for Fresh<S> {
    type Target = S;

    fn deref(&self) -> &S {
        self.server.as_ref().expect("running until dropped")
    }
}

impl<S> Drop for Fresh<S> {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The OCI layouts and the baseline's media.
#[derive(Debug)]
pub struct Layouts {
    v1: PathBuf,
    /// A tar.zst of v1's layout, and the time it took.
    v1_zst: (PathBuf, Run),
    /// A tar.zst of v2's layout without v1's blobs: a blob-level delta.
    v2_delta_zst: (PathBuf, Run),
}

impl Layouts {
    fn write(bench: &Bench, blobs: &Path, v1: &Version, v2: &Version) -> Layouts {
        let (l1, l2, d2) = (
            bench.path("layout-1"),
            bench.path("layout-2"),
            bench.path("delta-2"),
        );
        let none = HashSet::new();
        v1.write_layout(blobs, &l1, &none).expect("v1 layout");
        v2.write_layout(blobs, &l2, &none).expect("v2 layout");
        v2.write_layout(blobs, &d2, &v1.digests())
            .expect("v2 delta layout");
        for (v, l) in [(v1, &l1), (v2, &l2)] {
            let file = bench.path(&format!("app-{}.yaml", v.version));
            fs::write(file, v.app_file(l)).expect("write the app file");
        }
        let v1_zst = tar_zst(&l1, &bench.path("layout-1.tar.zst"));
        let v2_delta_zst = tar_zst(&d2, &bench.path("delta-2.tar.zst"));
        Layouts {
            v1: l1,
            v1_zst,
            v2_delta_zst,
        }
    }
}

/// `tar -C dir -cf - . | zstd -T0 -3 -o out`.
fn tar_zst(dir: &Path, out: &Path) -> (PathBuf, Run) {
    let t = (Instant::now(), children_cpu_seconds());
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tar");
    must(
        Command::new("zstd")
            .args(["-T0", "-3", "-q", "-f", "-o"])
            .arg(out)
            .stdin(tar.stdout.take().expect("tar's stdout")),
        "zstd",
    );
    assert!(
        tar.wait().expect("wait for tar").success(),
        "tar of {dir:?}"
    );
    (out.to_owned(), steps::since(t))
}

/// `zstd -dc file | tar -C dir -xf -`.
fn extract(file: &Path, dir: &Path) -> Run {
    fs::create_dir_all(dir).expect("create the extract dir");
    let t = (Instant::now(), children_cpu_seconds());
    let mut zstd = Command::new("zstd")
        .args(["-dcq"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start zstd");
    must(
        Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-xf")
            .arg("-")
            .stdin(zstd.stdout.take().expect("zstd's stdout")),
        "tar -x",
    );
    assert!(
        zstd.wait().expect("wait for zstd").success(),
        "zstd -d {file:?}"
    );
    steps::since(t)
}

/// Runs `c` to success: its output, wall and CPU seconds, and its peak RSS.
fn run_sampled(c: &mut Command, what: &str) -> (Output, Run) {
    let t = (Instant::now(), children_cpu_seconds());
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let sampler = PeakSampler::start(child.id());
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {what}: {e}"));
    let peak = sampler.finish();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = steps::since(t);
    run.rss = Some(peak);
    (out, run)
}

/// `skopeo copy --preserve-digests oci:LAYOUT:NAME docker://ADDR/REPO:TAG` of every image.
fn skopeo_copy_all(layout: &Path, server: &dyn Server, v: &Version) {
    for i in &v.images {
        must(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy", "--preserve-digests", "-q"])
                .arg("--dest-tls-verify=false")
                .arg(format!("oci:{}:{}", layout.display(), i.name))
                .arg(format!(
                    "docker://{}/{}:{}",
                    server.addr(),
                    i.repository(),
                    v.tag()
                ))
                .stdin(Stdio::null()),
            "skopeo copy",
        );
    }
}

/// Every image of `v` is tagged in the registry with its manifest's digest.
fn check_served(server: &dyn Server, v: &Version) {
    let mut client = Client::new(server.addr());
    let accept = [("Accept", airlock_conformance::OCI_MANIFEST)];
    for i in &v.images {
        let path = format!("/v2/{}/manifests/{}", i.repository(), v.tag());
        let r = client.head(&path, &accept).expect("HEAD manifest");
        assert_eq!(
            (r.status, r.header("docker-content-digest")),
            (200, Some(i.manifest.digest.as_str())),
            "{path}"
        );
    }
}

/// `(repository, tag) -> digest` of `airlock ls --json` over `data`.
fn tags(bench: &Bench, data: &Path) -> BTreeMap<(String, String), String> {
    let out = must(&mut bench.airlock(data, &["--json", "ls"]), "airlock ls");
    let ls: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json");
    let mut tags = BTreeMap::new();
    for r in ls["repositories"].as_array().into_iter().flatten() {
        let repo = r["repository"].as_str().unwrap_or_default();
        for t in r["tags"].as_array().into_iter().flatten() {
            let (tag, digest) = (t["tag"].as_str(), t["digest"].as_str());
            tags.insert(
                (repo.to_owned(), tag.unwrap_or_default().to_owned()),
                digest.unwrap_or_default().to_owned(),
            );
        }
    }
    tags
}

/// The site's tags after an import are the vendor's, and name every image of `v`.
fn check_imported(bench: &Bench, site: &Path, vendor: &Path, v: &Version) {
    let (site_tags, vendor_tags) = (tags(bench, site), tags(bench, vendor));
    for (key, digest) in &site_tags {
        assert_eq!(vendor_tags.get(key), Some(digest), "site tag {key:?}");
    }
    for i in &v.images {
        let key = (i.repository(), v.tag());
        assert_eq!(site_tags.get(&key), Some(&i.manifest.digest), "{key:?}");
    }
    let app = (format!("airlock/apps/{APP_NAME}"), v.tag());
    assert!(site_tags.contains_key(&app), "{app:?} imported");
}

/// The last [`RANGE_TAIL_BYTES`] of a blob of the release.
fn blob_tail(blobs: &Path, w: &Wanted) -> Vec<u8> {
    let hex = w.digest.trim_start_matches("sha256:");
    let mut f = fs::File::open(blobs.join("sha256").join(hex)).expect("open the blob");
    let from = w.size.saturating_sub(RANGE_TAIL_BYTES);
    f.seek(SeekFrom::Start(from)).expect("seek");
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).expect("read the tail");
    tail
}

/// Seconds to the first body byte of `Range: bytes=<size - 1 MiB>-` on `w`, checked against
/// `tail`; and seconds to its last byte.
fn range_first_byte(server: &dyn Server, w: &Wanted, tail: &[u8]) -> (f64, f64) {
    let from = w.size - tail.len() as u64;
    let range = format!("bytes={from}-");
    let mut got = Vec::new();
    let t = Instant::now();
    let r = Client::new(server.addr())
        .get(&w.path(), &[("Range", &range)], &mut |b| {
            got.extend_from_slice(b)
        })
        .expect("Range GET");
    let all = t.elapsed().as_secs_f64();
    assert_eq!(r.status, 206, "Range GET {} {range}", w.path());
    assert!(got == tail, "Range GET {} {range}: wrong bytes", w.path());
    (r.first_byte.map_or(all, |d| d.as_secs_f64()), all)
}

/// One full GET of `w` from a fresh client: wall seconds.
fn get_once(server: &dyn Server, w: &Wanted) -> Run {
    let mut client = Client::new(server.addr());
    steps::measure(server, || {
        fetch_checked(&mut client, w).expect("GET the blob")
    })
    .1
}

/// Fetchers each GET every blob of `wanted`.
fn fan_out_run(server: &dyn Server, wanted: &[Wanted], fetchers: usize) -> Run {
    let (out, mut run) = steps::measure(server, || {
        fan_out(server.addr(), wanted, fetchers).unwrap_or_else(|e| panic!("fan-out: {e}"))
    });
    let want: u64 = wanted.iter().map(|w| w.size).sum::<u64>() * fetchers as u64;
    assert_eq!(out.bytes, want, "fan-out bytes");
    run.wall = out.wall.as_secs_f64();
    run
}
