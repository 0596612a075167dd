//! The site benchmark's release (issue 14): N service images over one shared rootfs-like base
//! layer and two runtime layers (even-numbered images on one, odd on the other), each image with
//! an application layer of its own, gzip'd by Go's producers through `go-gzip`: the base and
//! every other application layer by pgzip (what umoci writes), the runtimes and the other
//! applications by Go's gzip -6 (what docker writes), about half of the bytes each.
//!
//! Version 2 rebuilds the base ([`Edit::TYPICAL`]: 2% of the files edited, 10% of the mtimes
//! changed) and ships new builds of the first two applications ([`APP_REBUILD`]); every image
//! gets a new manifest. Layers stream from the generator through go-gzip into files named by
//! digest (no layer is ever whole in memory), and each version is then written as an OCI layout
//! of hard links to them.

use std::{
    collections::HashSet,
    fs,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use airlock_conformance::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{
    app::APP_REBUILD,
    data::{Edit, Rootfs},
    fetch::Wanted,
    gogzip::{GoGzip, Producer},
};

/// Repositories are `<prefix>/<image>`.
pub const REPOSITORY_PREFIX: &str = "example.com/site";

/// The application's name: its versions are `airlock/apps/site:<tag>` in airlock.
pub const APP_NAME: &str = "site";

/// Share of a version's gzip'd layer bytes in the base layer, and in each runtime layer.
const BASE_SHARE: f64 = 0.30;
const RUNTIME_SHARE: f64 = 0.125;
const RUNTIMES: usize = 2;

/// Applications version 2 rebuilds.
const CHANGED_APPS: usize = 2;

/// gzip'd bytes per generated rootfs entry (files of [`MAX_FILE_BYTES`] at most): 7,140 and
/// 7,870 measured over 42,000 entries of two seeds (flate2 -6, 1.6x), so a release comes out
/// within about 10% of its target (small ones vary more: a few large files weigh a lot).
const GZIP_BYTES_PER_ENTRY: f64 = 7_500.0;

/// Largest file in any layer.
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// Fewest entries of any layer.
const MIN_ENTRIES: usize = 20;

/// How big the release is.
#[derive(Clone, Copy, Debug)]
pub struct ReleaseSpec {
    /// Seed of every generator.
    pub seed: u64,
    /// Images (services).
    pub images: usize,
    /// Target bytes of version 1's distinct gzip'd layers.
    pub layer_bytes: u64,
}

/// One layer to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    /// `base`, `runtime-1`, `app-01`, ...
    pub name: String,
    /// Seed of its tree.
    pub seed: u64,
    /// Entries of its tree.
    pub entries: usize,
    /// Who gzips it.
    pub producer: Producer,
    /// How version 2 changes it, if it does.
    pub v2: Option<Edit>,
}

/// The layers of a release: the base, the runtimes, then one application per image.
pub fn plan(spec: &ReleaseSpec) -> Vec<LayerPlan> {
    let entries = |share: f64| {
        ((spec.layer_bytes as f64 * share / GZIP_BYTES_PER_ENTRY) as usize).max(MIN_ENTRIES)
    };
    let app_share = (1.0 - BASE_SHARE - RUNTIME_SHARE * RUNTIMES as f64) / spec.images as f64;
    let mut layers = vec![LayerPlan {
        name: "base".to_owned(),
        seed: spec.seed,
        entries: entries(BASE_SHARE),
        producer: Producer::Pgzip,
        v2: Some(Edit::TYPICAL),
    }];
    for r in 1..=RUNTIMES {
        layers.push(LayerPlan {
            name: format!("runtime-{r}"),
            seed: spec.seed + 10 * r as u64,
            entries: entries(RUNTIME_SHARE),
            producer: Producer::Gzip6,
            v2: None,
        });
    }
    for i in 0..spec.images {
        layers.push(LayerPlan {
            name: image_name(i),
            seed: spec.seed + 1000 + 10 * i as u64,
            entries: entries(app_share),
            producer: if i % 2 == 0 {
                Producer::Pgzip
            } else {
                Producer::Gzip6
            },
            v2: (i < CHANGED_APPS).then_some(APP_REBUILD),
        });
    }
    layers
}

/// The name of image `i` (from 0): `app-01`, ...
fn image_name(i: usize) -> String {
    format!("app-{:02}", i + 1)
}

/// A blob written under the release's blob directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// A gzip'd layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The plan's name, with `@v2` for a rebuilt one.
    pub name: String,
    /// Who gzipped it.
    pub producer: Producer,
    /// The gzip blob.
    pub blob: BlobRef,
    /// sha256 of the tar inside (the config's diff id).
    pub diff_id: String,
    /// Bytes of the tar inside.
    pub tar_bytes: u64,
}

/// One image: its layers, config and manifest.
#[derive(Clone, Debug)]
pub struct Image {
    /// `app-01`, ...: its name in the OCI layouts, the last part of its repository.
    pub name: String,
    /// Base, runtime, application.
    pub layers: Vec<Layer>,
    /// The config blob.
    pub config: BlobRef,
    /// The manifest blob.
    pub manifest: BlobRef,
}

impl Image {
    /// `example.com/site/<name>`.
    pub fn repository(&self) -> String {
        format!("{REPOSITORY_PREFIX}/{}", self.name)
    }
}

/// One version of the release.
#[derive(Clone, Debug)]
pub struct Version {
    /// 1 or 2.
    pub version: u32,
    /// The images, in name order.
    pub images: Vec<Image>,
}

impl Version {
    /// The images' tag and the application's version: `1.0`, `2.0`.
    pub fn tag(&self) -> String {
        format!("{}.0", self.version)
    }

    /// Every distinct layer, in the order images first use them.
    pub fn layers(&self) -> Vec<&Layer> {
        let mut seen = HashSet::new();
        self.images
            .iter()
            .flat_map(|i| &i.layers)
            .filter(|l| seen.insert(&l.blob.digest))
            .collect()
    }

    /// Bytes of the distinct layers.
    pub fn layer_bytes(&self) -> u64 {
        self.layers().iter().map(|l| l.blob.size).sum()
    }

    /// Every distinct layer as a blob to fetch from the first repository holding it.
    pub fn wanted_layers(&self) -> Vec<Wanted> {
        let mut seen = HashSet::new();
        self.images
            .iter()
            .flat_map(|i| i.layers.iter().map(move |l| (i, l)))
            .filter(|(_, l)| seen.insert(&l.blob.digest))
            .map(|(i, l)| Wanted {
                repository: i.repository(),
                digest: l.blob.digest.clone(),
                size: l.blob.size,
            })
            .collect()
    }

    /// Digests of every blob: layers, configs, manifests.
    pub fn digests(&self) -> HashSet<String> {
        self.images
            .iter()
            .flat_map(|i| {
                let layers = i.layers.iter().map(|l| l.blob.digest.clone());
                layers.chain([i.config.digest.clone(), i.manifest.digest.clone()])
            })
            .collect()
    }

    /// Writes an OCI layout at `dir` of hard links into `blobs` naming each image by its name,
    /// leaving out the blobs of `skip` (a blob-level delta).
    pub fn write_layout(&self, blobs: &Path, dir: &Path, skip: &HashSet<String>) -> io::Result<()> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let mut manifests = Vec::new();
        for digest in self.digests().difference(skip) {
            let to = layout_blob_path(dir, digest);
            if !to.exists() {
                fs::hard_link(blob_path(blobs, digest), to)?;
            }
        }
        for i in &self.images {
            manifests.push(json!({
                "mediaType": OCI_MANIFEST, "digest": i.manifest.digest, "size": i.manifest.size,
                "annotations": {"org.opencontainers.image.ref.name": i.name},
            }));
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(dir.join("index.json"), index.to_string())
    }

    /// An `airlock add -f` application file for the images of the layout at `layout`:
    /// application [`APP_NAME`], images `example.com/site/<name>:<tag>`.
    pub fn app_file(&self, layout: &Path) -> String {
        let mut app = format!("name: {APP_NAME}\nversion: \"{}\"\nimages:\n", self.tag());
        for i in &self.images {
            app.push_str(&format!(
                "  - source: oci:{}:{}\n    as: {}:{}\n",
                layout.display(),
                i.name,
                i.repository(),
                self.tag()
            ));
        }
        app
    }
}

/// Generates both versions: every layer streamed through go-gzip into `blobs/sha256/<hex>`,
/// configs and manifests beside them; on every core, largest layers first.
pub fn generate(spec: &ReleaseSpec, go: &GoGzip, blobs: &Path) -> (Version, Version) {
    fs::create_dir_all(blobs.join("sha256")).expect("create the blob dir");
    let plans = plan(spec);
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plans[i].entries));
    let next = AtomicUsize::new(0);
    let made: Mutex<Vec<Option<Versions>>> = Mutex::new(vec![None; plans.len()]);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let layers = make_layers(&plans[i], go, blobs);
                    made.lock().expect("no worker panicked")[i] = Some(layers);
                }
            });
        }
    });
    let made: Vec<Versions> = made
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|l| l.expect("every layer made"))
        .collect();
    let version = |v: u32| {
        let pick = |(one, two): &Versions| match (v, two) {
            (2, Some(two)) => two.clone(),
            _ => one.clone(),
        };
        let (base, runtimes, apps) = (&made[0], &made[1..=RUNTIMES], &made[RUNTIMES + 1..]);
        let images = apps
            .iter()
            .enumerate()
            .map(|(i, app)| {
                let layers = vec![pick(base), pick(&runtimes[i % RUNTIMES]), pick(app)];
                image(blobs, &image_name(i), v, layers).expect("write config and manifest")
            })
            .collect();
        Version { version: v, images }
    };
    (version(1), version(2))
}

/// A plan's version 1 layer and, if version 2 changes it, its version 2 layer.
type Versions = (Layer, Option<Layer>);

fn make_layers(plan: &LayerPlan, go: &GoGzip, blobs: &Path) -> Versions {
    let tree = Rootfs::generate(plan.seed, plan.entries, MAX_FILE_BYTES);
    let one = make_layer(go, blobs, &plan.name, &tree, plan.producer);
    let two = plan.v2.map(|edit| {
        let rebuilt = tree.edit(plan.seed + 1, edit);
        make_layer(
            go,
            blobs,
            &format!("{}@v2", plan.name),
            &rebuilt,
            plan.producer,
        )
    });
    (one, two)
}

fn make_layer(go: &GoGzip, blobs: &Path, name: &str, tree: &Rootfs, producer: Producer) -> Layer {
    let tmp = blobs.join(format!("tmp-{name}"));
    let (mut hasher, mut tar_bytes) = (Sha256::new(), 0u64);
    let gz = go
        .compress(producer, &tmp, |out| {
            let mut tee = BufWriter::with_capacity(
                1 << 20,
                Tee {
                    out,
                    hasher: &mut hasher,
                    bytes: &mut tar_bytes,
                },
            );
            tree.write_tar(&mut tee)
        })
        .unwrap_or_else(|e| panic!("gzip layer {name}: {e}"));
    fs::rename(&tmp, blob_path(blobs, &gz.digest)).expect("name the layer by its digest");
    Layer {
        name: name.to_owned(),
        producer,
        blob: BlobRef {
            digest: gz.digest,
            size: gz.size,
        },
        diff_id: format!("sha256:{:x}", hasher.finalize()),
        tar_bytes,
    }
}

/// A writer that hashes and counts what it passes on.
struct Tee<'a> {
    out: &'a mut dyn Write,
    hasher: &'a mut Sha256,
    bytes: &'a mut u64,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        *self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes image `name`'s config and manifest into `blobs`.
fn image(blobs: &Path, name: &str, version: u32, layers: Vec<Layer>) -> io::Result<Image> {
    let (os, arch) = airlock_conformance::host_platform();
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = put_json(
        blobs,
        &json!({"architecture": arch, "os": os,
                "config": {"Entrypoint": [format!("/opt/{name}/bin/{name}")],
                           "Labels": {"service": name, "version": format!("{version}.0")}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    )?;
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": OCI_LAYER_GZIP, "digest": l.blob.digest, "size": l.blob.size}))
        .collect();
    let manifest = put_json(
        blobs,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
                "layers": descriptors}),
    )?;
    Ok(Image {
        name: name.to_owned(),
        layers,
        config,
        manifest,
    })
}

fn put_json(blobs: &Path, value: &Value) -> io::Result<BlobRef> {
    let bytes = value.to_string().into_bytes();
    let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
    fs::write(blob_path(blobs, &digest), &bytes)?;
    Ok(BlobRef {
        digest,
        size: bytes.len() as u64,
    })
}

/// Where the blob directory `blobs` keeps `digest`: `<blobs>/sha256/<hex>`.
fn blob_path(blobs: &Path, digest: &str) -> PathBuf {
    blobs
        .join("sha256")
        .join(digest.strip_prefix("sha256:").unwrap_or(digest))
}

/// Where the OCI layout at `dir` keeps `digest`: `<dir>/blobs/sha256/<hex>`.
fn layout_blob_path(dir: &Path, digest: &str) -> PathBuf {
    blob_path(&dir.join("blobs"), digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ReleaseSpec = ReleaseSpec {
        seed: 3,
        images: 10,
        layer_bytes: 450_000_000,
    };

    #[test]
    fn the_plan_splits_bytes_between_producers_and_changes_the_base_and_two_apps() {
        let plans = plan(&SPEC);
        assert_eq!(plans.len(), 1 + RUNTIMES + SPEC.images);
        let names: HashSet<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), plans.len());
        let all: usize = plans.iter().map(|p| p.entries).sum();
        let pgzip: usize = plans
            .iter()
            .filter(|p| p.producer == Producer::Pgzip)
            .map(|p| p.entries)
            .sum();
        let share = pgzip as f64 / all as f64;
        assert!((0.45..0.60).contains(&share), "pgzip share {share}");
        let planned = all as f64 * GZIP_BYTES_PER_ENTRY;
        assert!((planned / SPEC.layer_bytes as f64 - 1.0).abs() < 0.01);
        let changed: Vec<&str> = plans
            .iter()
            .filter(|p| p.v2.is_some())
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(changed, ["base", "app-01", "app-02"]);
    }

    #[test]
    fn a_tiny_release_writes_layouts_that_read_back() {
        if crate::process::find_in_path("go").is_none() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let go = GoGzip::build(tmp.path());
        let spec = ReleaseSpec {
            seed: 1,
            images: 3,
            layer_bytes: 1_000_000,
        };
        let blobs = tmp.path().join("blobs");
        let (v1, v2) = generate(&spec, &go, &blobs);
        assert_eq!(v1.layers().len(), 1 + RUNTIMES + 3);
        assert_eq!(v1.wanted_layers().len(), v1.layers().len());
        // v2: a new base and two new applications, the runtimes and app-03 kept.
        let new: Vec<&str> = v2
            .layers()
            .into_iter()
            .filter(|l| !v1.digests().contains(&l.blob.digest))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(new, ["base@v2", "app-01@v2", "app-02@v2"]);
        let dir = tmp.path().join("layout");
        v1.write_layout(&blobs, &dir, &HashSet::new())
            .expect("layout");
        for i in &v1.images {
            let back = airlock_conformance::read_oci_layout(&dir, &i.name).expect("read back");
            assert_eq!(back.manifest.digest, i.manifest.digest);
            assert_eq!(back.layers.len(), 3);
        }
        let delta = tmp.path().join("delta");
        v2.write_layout(&blobs, &delta, &v1.digests())
            .expect("delta layout");
        let shipped = fs::read_dir(delta.join("blobs/sha256"))
            .expect("delta blobs")
            .count();
        // Three new layers, and each image's new config and manifest.
        assert_eq!(shipped, 3 + 2 * 3);
    }
}
