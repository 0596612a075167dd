//! Bundles (issue 5) end to end through the `airlock` binary, against the blob-level baseline:
//! the tar of an OCI layout holding the same images (what Hauler, Zarf and skopeo ship),
//! extracted at the site and pushed with skopeo into a registry.
//!
//! Workload ([`airlock_benches::app`]): four services over one shared rootfs-like base, each
//! with a runtime and an application layer of its own, gzip'd (the base by flate2 level 6,
//! the rest by pigz -6 when installed). Version 2 rebuilds the base (2% of files edited, 10% of
//! mtimes changed) and ships a new build of one service. Both versions go into a vendor store
//! with `airlock add -f`.
//!
//! Printed, in one table: bundle bytes (sum of volumes) of v1 and v2 full at zstd levels 19 and
//! 3, the v2 delta by `--since` v1's index and by `--have` the site's inventory, each against
//! the OCI layout tar of the same version and against the best a blob-level delta can do (a tar
//! of only the blobs whose digest changed); then wall and CPU seconds (children included) of
//! export and import against `tar -xf` plus `skopeo copy` of every image into `airlock serve`
//! on loopback, the same registry a site runs, and skopeo copying the same images into a local
//! OCI layout (the push's cost without a registry ingesting it). Without skopeo the baseline
//! times are skipped. Every import is checked: each service's tag names its manifest's digest.
//!
//! The `airlock` binary is `$AIRLOCK_BIN`, else built by `cargo build --release -p airlock`
//! into this bench's target directory. Run: `cargo bench -p airlock-benches --bench bundle`.

use std::{
    collections::HashSet,
    ffi::OsStr,
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Instant,
};

use airlock_benches::{
    app::{self, AppSpec, AppVersion, Gzip},
    measure::{children_cpu_seconds, process_cpu_seconds},
    process::{airlock_bin, find_in_path, must},
    table::Table,
};

/// An argument of a command: a `&str` or a path.
type Arg<'a> = &'a dyn AsRef<OsStr>;

/// About 88 MB of tar per version, 53 MB gzip'd; two thirds of it the base.
const SPEC: AppSpec = AppSpec {
    seed: 5,
    base_entries: 4000,
    runtime_entries: 600,
    app_entries: 150,
    max_file_bytes: 2 * 1024 * 1024,
};

const APP: &str = "airlock/apps/shop";

fn main() {
    let bin = airlock_bin();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bench = Bench {
        bin,
        cwd: tmp.path().to_owned(),
    };
    let mut table = Table::new(&[38, 12, 9, 11, 13]);

    let t = Instant::now();
    let (v1, v2) = app::generate(&SPEC, Gzip::Pigz);
    let encoders: HashSet<&str> = v1.layers.iter().map(|l| l.encoder).collect();
    eprintln!(
        "bundle: generated v1 and v2 in {:.1} s ({encoders:?})",
        t.elapsed().as_secs_f64()
    );
    for v in [&v1, &v2] {
        table.note(format!(
            "v{}: {} images, {} distinct layers, {:.1} MB of tar, {:.1} MB of gzip blobs \
             ({:.1} MB with configs and manifests); the base alone {:.1} MB of tar, {:.1} MB gzip'd",
            v.version,
            v.images.len(),
            v.layers.len(),
            mb(v.tar_bytes()),
            mb(v.layers.iter().map(|l| l.blob.size()).sum()),
            mb(v.blob_bytes()),
            mb(v.layers[0].tar_bytes),
            mb(v.layers[0].blob.size()),
        ));
    }
    let layouts: Vec<PathBuf> = [&v1, &v2]
        .iter()
        .map(|v| {
            let dir = bench.path(&format!("layout-{}", v.version));
            v.write_layout(&dir).expect("write layout");
            let file = bench.path(&format!("app-{}.yaml", v.version));
            std::fs::write(&file, v.app_file(&dir)).expect("write app file");
            dir
        })
        .collect();

    // Baseline bundles: the OCI layout tars, and v2's changed blobs only.
    let v1_digests: HashSet<&str> = v1.blobs().iter().map(|b| b.digest.as_str()).collect();
    let tar1 = tar_layout(&layouts[0], &bench.path("shop-1.tar"), &HashSet::new());
    let tar2 = tar_layout(&layouts[1], &bench.path("shop-2.tar"), &HashSet::new());
    let tar_delta = tar_layout(&layouts[1], &bench.path("shop-2-delta.tar"), &v1_digests);
    let zst1 = zstd_bytes(&bench.path("shop-1.tar"), 3);

    // The vendor.
    let vendor = bench.path("vendor");
    let add1 = bench.airlock(&vendor, &[&"add", &"-f", &bench.path("app-1.yaml")]);
    let add2 = bench.airlock(&vendor, &[&"add", &"-f", &bench.path("app-2.yaml")]);
    let exp19 = bench.export(&vendor, "1.0", "full-19", &[&"--level", &"19"]);
    let exp3 = bench.export(&vendor, "1.0", "full-3", &[&"--level", &"3"]);
    let exp2 = bench.export(&vendor, "2.0", "full2-19", &[&"--level", &"19"]);
    let since = bench.path("full-19/shop-1.0.index.airlock");
    let exp_since = bench.export(&vendor, "2.0", "delta-since", &[&"--since", &since]);

    // The site: v1 from each full bundle, then the deltas.
    let (site_a, site_b) = (bench.path("site-a"), bench.path("site-b"));
    let imp19 = bench.import(&site_a, "full-19");
    let imp3 = bench.import(&site_b, "full-3");
    check_tags(&bench, &site_a, &v1);
    check_tags(&bench, &site_b, &v1);
    let inventory = bench.path("site-a.inventory");
    bench.airlock(&site_a, &[&"inventory", &"--out", &inventory]);
    let exp_have = bench.export(&vendor, "2.0", "delta-have", &[&"--have", &inventory]);
    let imp_since = bench.import(&site_a, "delta-since");
    let imp_have = bench.import(&site_b, "delta-have");
    check_tags(&bench, &site_a, &v2);
    check_tags(&bench, &site_b, &v2);

    table.head(&["bundle sizes", "bytes", "MB", "/ OCI tar", "/ blob delta"]);
    let size = |t: &mut Table, what: &str, b: u64, tar: u64, delta: Option<u64>| {
        t.row(&[
            what.to_owned(),
            b.to_string(),
            format!("{:.2}", mb(b)),
            format!("{:.3}", b as f64 / tar as f64),
            delta.map_or(String::new(), |d| format!("{:.3}", b as f64 / d as f64)),
        ]);
    };
    size(&mut table, "v1 baseline: OCI layout tar", tar1, tar1, None);
    size(
        &mut table,
        "v1 baseline: OCI layout tar, zstd -3",
        zst1,
        tar1,
        None,
    );
    size(
        &mut table,
        "v1 airlock full, level 19",
        exp19.bytes,
        tar1,
        None,
    );
    size(
        &mut table,
        "v1 airlock full, level 3",
        exp3.bytes,
        tar1,
        None,
    );
    size(&mut table, "v2 baseline: OCI layout tar", tar2, tar2, None);
    size(
        &mut table,
        "v2 airlock full, level 19",
        exp2.bytes,
        tar2,
        None,
    );
    let d = Some(tar_delta);
    size(
        &mut table,
        "v2 baseline: changed blobs only",
        tar_delta,
        tar2,
        d,
    );
    size(
        &mut table,
        "v2 airlock delta --since v1",
        exp_since.bytes,
        tar2,
        d,
    );
    size(
        &mut table,
        "v2 airlock delta --have inv.",
        exp_have.bytes,
        tar2,
        d,
    );
    table.note(format!(
        "each bundle also writes NAME.index.airlock ({} B for v1; every volume carries it too); \
         the site's inventory is {} B",
        exp19.index_bytes,
        std::fs::metadata(&inventory).map_or(0, |m| m.len())
    ));

    let baseline = find_in_path("skopeo").map(|skopeo| {
        let registry = Served::start(&bench, &bench.path("registry"));
        let b1 = registry.extract_and_push(&bench, &skopeo, &v1);
        let b2 = registry.extract_and_push(&bench, &skopeo, &v2);
        (b1, b2)
    });
    table.head(&["times", "wall s", "CPU s", "/ baseline", "MB/s"]);
    let (w1, w2) = baseline.as_ref().map_or((None, None), |(b1, b2)| {
        (Some(b1.total.wall), Some(b2.total.wall))
    });
    let time = |t: &mut Table, what: &str, r: Run, base: Option<f64>, bytes: u64| {
        t.row(&[
            what.to_owned(),
            format!("{:.2}", r.wall),
            format!("{:.2}", r.cpu),
            base.map_or(String::new(), |b| format!("{:.2}", r.wall / b)),
            format!("{:.1}", mb(bytes) / r.wall),
        ]);
    };
    let (img1, img2) = (v1.blob_bytes(), v2.blob_bytes());
    time(
        &mut table,
        "vendor: add -f v1 (empty store)",
        add1,
        None,
        img1,
    );
    time(
        &mut table,
        "vendor: add -f v2 (v1 stored)",
        add2,
        None,
        img2,
    );
    time(
        &mut table,
        "vendor: export v1 full, level 19",
        exp19.run,
        None,
        img1,
    );
    time(
        &mut table,
        "vendor: export v1 full, level 3",
        exp3.run,
        None,
        img1,
    );
    time(
        &mut table,
        "vendor: export v2 full, level 19",
        exp2.run,
        None,
        img2,
    );
    time(
        &mut table,
        "vendor: export v2 --since, l. 19",
        exp_since.run,
        None,
        img2,
    );
    time(
        &mut table,
        "vendor: export v2 --have, l. 19",
        exp_have.run,
        None,
        img2,
    );
    time(
        &mut table,
        "site: import v1 full l.19, empty",
        imp19,
        w1,
        img1,
    );
    time(
        &mut table,
        "site: import v1 full l.3, empty",
        imp3,
        w1,
        img1,
    );
    if let Some((b1, _)) = &baseline {
        time(
            &mut table,
            "baseline v1: tar -xf + skopeo",
            b1.total,
            w1,
            img1,
        );
        time(&mut table, "  of which tar -xf", b1.extract, w1, img1);
        time(&mut table, "  of which skopeo copy x4", b1.push, w1, img1);
        time(
            &mut table,
            "  (skopeo copy x4 to oci: dir)",
            b1.to_dir,
            w1,
            img1,
        );
    }
    time(
        &mut table,
        "site: import v2 --since delta",
        imp_since,
        w2,
        img2,
    );
    time(
        &mut table,
        "site: import v2 --have delta",
        imp_have,
        w2,
        img2,
    );
    if let Some((_, b2)) = &baseline {
        time(
            &mut table,
            "baseline v2: tar -xf + skopeo",
            b2.total,
            w2,
            img2,
        );
        time(&mut table, "  of which tar -xf", b2.extract, w2, img2);
        time(&mut table, "  of which skopeo copy x4", b2.push, w2, img2);
        time(
            &mut table,
            "  (skopeo copy x4 to oci: dir)",
            b2.to_dir,
            w2,
            img2,
        );
    }
    table.note(
        "MB/s: the version's image bytes (distinct blobs, gzip'd) over wall time; CPU: this \
         process's children (airlock, tar, skopeo) and the registry process"
            .to_owned(),
    );
    if baseline.is_none() {
        table.note("baseline times skipped: skopeo is not on PATH".to_owned());
    } else {
        table.note(
            "baseline: the OCI tar extracted, then `skopeo copy --preserve-digests oci:DIR:SVC \
             docker://...` per image into `airlock serve` over a fresh store (v2: the same \
             registry, holding v1; skopeo skips blobs it has); (skopeo copy to oci: dir) copies \
             the same images into a local layout instead, the cost without a registry's ingest"
                .to_owned(),
        );
    }
    table.print();
}

/// Wall and CPU seconds of one step.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    wall: f64,
    cpu: f64,
}

/// An export: its run and the bytes it wrote.
#[derive(Debug)]
struct Export {
    run: Run,
    bytes: u64,
    index_bytes: u64,
}

/// The baseline's import of one version.
#[derive(Debug)]
struct Baseline {
    total: Run,
    extract: Run,
    push: Run,
    /// skopeo copying the same images to a local OCI layout: what the push costs without a
    /// registry ingesting it.
    to_dir: Run,
}

struct Bench {
    bin: PathBuf,
    cwd: PathBuf,
}

impl Bench {
    fn path(&self, name: &str) -> PathBuf {
        self.cwd.join(name)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.cwd).stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AIRLOCK_") {
                c.env_remove(k);
            }
        }
        c
    }

    /// `airlock --data DATA ARGS`, which must succeed; its wall and CPU time.
    fn airlock(&self, data: &Path, args: &[Arg]) -> Run {
        let mut c = self.command();
        c.arg("--data").arg(data).args(args);
        timed(|| must(&mut c, "airlock")).1
    }

    fn export(&self, data: &Path, version: &str, out: &str, extra: &[Arg]) -> Export {
        let dir = self.path(out);
        let (app, name) = (format!("{APP}:{version}"), format!("shop-{version}"));
        let mut args: Vec<Arg> = vec![
            &"export",
            &app,
            &"--no-binary",
            &"--out",
            &dir,
            &"--name",
            &name,
        ];
        args.extend_from_slice(extra);
        let run = self.airlock(data, &args);
        let (mut bytes, mut index_bytes) = (0, 0);
        for entry in std::fs::read_dir(&dir).expect("read bundle dir") {
            let entry = entry.expect("bundle dir entry");
            let n = entry.file_name().to_string_lossy().into_owned();
            let len = entry.metadata().expect("volume metadata").len();
            if n.ends_with(".index.airlock") {
                index_bytes += len;
            } else if n.ends_with(".airlock") {
                bytes += len;
            }
        }
        Export {
            run,
            bytes,
            index_bytes,
        }
    }

    fn import(&self, data: &Path, dir: &str) -> Run {
        self.airlock(
            data,
            &[
                &"import",
                &"--no-prompt",
                &"--allow-unsigned",
                &self.path(dir),
            ],
        )
    }
}

/// Every service of `v` is tagged in `data` with its manifest's digest.
fn check_tags(bench: &Bench, data: &Path, v: &AppVersion) {
    let mut c = bench.command();
    c.arg("--data").arg(data).args(["--json", "ls"]);
    let out = must(&mut c, "airlock ls");
    let ls: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json");
    for (s, image) in &v.images {
        let repo = format!("example.com/shop/{s}");
        let tagged = ls["repositories"].as_array().and_then(|rs| {
            let r = rs.iter().find(|r| r["repository"] == repo.as_str())?;
            let tags = r["tags"].as_array()?;
            let t = tags.iter().find(|t| t["tag"] == v.tag().as_str())?;
            t["digest"].as_str()
        });
        assert_eq!(tagged, Some(image.manifest.digest.as_str()), "{repo}");
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Run) {
    let (cpu, t) = (children_cpu_seconds(), Instant::now());
    let out = f();
    let run = Run {
        wall: t.elapsed().as_secs_f64(),
        cpu: children_cpu_seconds() - cpu,
    };
    (out, run)
}

/// Writes the OCI layout at `dir` as a tar (what `skopeo copy oci-archive:` and Hauler write),
/// leaving out the blobs named in `skip`; returns its size.
fn tar_layout(dir: &Path, out: &Path, skip: &HashSet<&str>) -> u64 {
    let mut tar = tar::Builder::new(File::create(out).expect("create tar"));
    tar.mode(tar::HeaderMode::Deterministic);
    for name in ["oci-layout", "index.json"] {
        tar.append_path_with_name(dir.join(name), name)
            .expect("tar layout file");
    }
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("read blobs")
        .map(|e| e.expect("blob entry").path())
        .collect();
    blobs.sort();
    for path in blobs {
        let hex = path.file_name().expect("blob name").to_string_lossy();
        if skip.contains(format!("sha256:{hex}").as_str()) {
            continue;
        }
        tar.append_path_with_name(&path, format!("blobs/sha256/{hex}"))
            .expect("tar blob");
    }
    let mut file = tar.into_inner().expect("finish tar");
    file.flush().expect("flush tar");
    std::fs::metadata(out).expect("tar metadata").len()
}

/// Bytes of `path` compressed by zstd at `level` (Hauler and Zarf ship `.tar.zst`).
fn zstd_bytes(path: &Path, level: i32) -> u64 {
    struct Count(u64);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let input = File::open(path).expect("open tar");
    zstd::stream::copy_encode(input, &mut count, level).expect("zstd");
    count.0
}

/// `airlock serve` over a fresh store on an ephemeral loopback port; killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(bench: &Bench, data: &Path) -> Served {
        let mut c = bench.command();
        let mut child = c
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start airlock serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("serve stdout"))
            .read_line(&mut line)
            .expect("serve's first line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .expect("serve prints its address")
            .to_owned();
        Served { child, addr }
    }

    fn cpu(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    /// `tar -xf` of the version's OCI tar, then `skopeo copy` of each image into the registry.
    fn extract_and_push(&self, bench: &Bench, skopeo: &Path, v: &AppVersion) -> Baseline {
        let dir = bench.path(&format!("extracted-{}", v.version));
        std::fs::create_dir_all(&dir).expect("create extract dir");
        let tar = bench.path(&format!("shop-{}.tar", v.version));
        let (_, extract) = timed(|| {
            must(
                Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&dir),
                "tar -xf",
            )
        });
        let served_cpu = self.cpu();
        let (_, mut push) = timed(|| {
            for (s, _) in &v.images {
                let dest = format!("docker://{}/example.com/shop/{s}:{}", self.addr, v.tag());
                skopeo_copy(skopeo, &dir, s, &dest);
            }
        });
        push.cpu += self.cpu() - served_cpu;
        let copied = bench.path("copied");
        let (_, to_dir) = timed(|| {
            for (s, _) in &v.images {
                skopeo_copy(skopeo, &dir, s, &format!("oci:{}:{s}", copied.display()));
            }
        });
        let total = Run {
            wall: extract.wall + push.wall,
            cpu: extract.cpu + push.cpu,
        };
        Baseline {
            total,
            extract,
            push,
            to_dir,
        }
    }
}

/// `skopeo copy --preserve-digests oci:LAYOUT:NAME DEST`, to a registry on plain HTTP.
fn skopeo_copy(skopeo: &Path, layout: &Path, name: &str, dest: &str) {
    must(
        Command::new(skopeo)
            .args(["--insecure-policy", "copy", "--preserve-digests"])
            .args(["--dest-tls-verify=false", "-q"])
            .arg(format!("oci:{}:{name}", layout.display()))
            .arg(dest)
            .stdin(Stdio::null()),
        "skopeo copy",
    );
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
