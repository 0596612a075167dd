//! A seeded multi-image application in two versions, written as OCI image layouts: the input of
//! the bundle benchmark.
//!
//! Every service image is a shared rootfs-like base layer, a runtime layer of its own and a
//! small application layer, all gzip'd. Version 2 rebuilds the base ([`Edit::TYPICAL`]: 2% of
//! the files edited, 10% of the mtimes changed) and ships a new build of one service's
//! application layer; every other layer keeps its digest. The same spec always gives the same
//! digests on a machine (pigz, when used, is deterministic with `-n`).

use std::{
    io::{Read, Write},
    path::Path,
    process::{Command, Stdio},
};

use airlock_conformance::{Blob, Image, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::data::{Edit, Rootfs};

/// The services of the application, one image each.
pub const SERVICES: [&str; 4] = ["web", "api", "worker", "cron"];

/// The service whose application layer version 2 rebuilds.
pub const CHANGED_SERVICE: &str = "api";

/// A new build of an application: a third of its files changed, every mtime new.
pub const APP_REBUILD: Edit = Edit {
    edited_files: 0.30,
    touched_mtimes: 1.0,
};

/// How big the application is.
#[derive(Clone, Copy, Debug)]
pub struct AppSpec {
    /// Seed of every generator.
    pub seed: u64,
    /// Entries of the shared base layer.
    pub base_entries: usize,
    /// Entries of each service's runtime layer.
    pub runtime_entries: usize,
    /// Entries of each service's application layer.
    pub app_entries: usize,
    /// Largest file in any layer.
    pub max_file_bytes: usize,
}

/// Which gzip encoder made a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gzip {
    /// flate2 level 6: airlock's own `--compress gzip` encoding.
    Flate2,
    /// `pigz -6 -n`, when installed (flate2 otherwise).
    Pigz,
}

/// One layer: its gzip blob and its uncompressed size.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The gzip blob.
    pub blob: Blob,
    /// Bytes of the tar inside.
    pub tar_bytes: u64,
    /// sha256 of the tar inside (the config's diff id).
    pub diff_id: String,
    /// The encoder that made it.
    pub encoder: &'static str,
}

/// One version of the application: an image per service, in [`SERVICES`] order.
#[derive(Clone, Debug)]
pub struct AppVersion {
    /// 1 or 2.
    pub version: u32,
    /// `(service, image)` pairs.
    pub images: Vec<(&'static str, Image)>,
    /// Every distinct layer of the version, base first.
    pub layers: Vec<Layer>,
}

/// Versions 1 and 2 of the application.
pub fn generate(spec: &AppSpec, gzip: Gzip) -> (AppVersion, AppVersion) {
    let base1 = Rootfs::generate(spec.seed, spec.base_entries, spec.max_file_bytes);
    let base2 = base1.edit(spec.seed + 1, Edit::TYPICAL);
    // Trees in order: base v1, base v2, then per service runtime, app v1, app v2 (changed only).
    let mut trees = vec![(base1, Gzip::Flate2), (base2, Gzip::Flate2)];
    for (i, s) in SERVICES.into_iter().enumerate() {
        let seed = spec.seed + 100 + 10 * i as u64;
        let runtime = Rootfs::generate(seed, spec.runtime_entries, spec.max_file_bytes);
        let app = Rootfs::generate(seed + 1, spec.app_entries, spec.max_file_bytes);
        trees.push((runtime, gzip));
        if s == CHANGED_SERVICE {
            let rebuilt = app.edit(seed + 2, APP_REBUILD);
            trees.push((app, gzip));
            trees.push((rebuilt, gzip));
        } else {
            trees.push((app, gzip));
        }
    }
    let mut layers: Vec<Layer> = std::thread::scope(|scope| {
        let handles: Vec<_> = trees
            .iter()
            .map(|(tree, how)| scope.spawn(move || layer(&tree.to_tar(), *how)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("layer thread"))
            .collect::<Vec<Layer>>()
    })
    .into_iter()
    .rev()
    .collect();
    let mut next = || layers.pop().expect("a layer per tree");
    let (base1, base2) = (next(), next());
    let mut v1 = AppVersion::new(1, base1);
    let mut v2 = AppVersion::new(2, base2);
    for s in SERVICES {
        let runtime = next();
        let app1 = next();
        let app2 = if s == CHANGED_SERVICE {
            next()
        } else {
            app1.clone()
        };
        v1.add_service(s, runtime.clone(), app1);
        v2.add_service(s, runtime, app2);
    }
    (v1, v2)
}

impl AppVersion {
    fn new(version: u32, base: Layer) -> AppVersion {
        AppVersion {
            version,
            images: Vec::new(),
            layers: vec![base],
        }
    }

    fn add_service(&mut self, service: &'static str, runtime: Layer, app: Layer) {
        let layers = [self.layers[0].clone(), runtime.clone(), app.clone()];
        self.images
            .push((service, image(service, self.version, &layers)));
        self.layers.extend([runtime, app]);
    }

    /// The version's tag: `1.0`, `2.0`.
    pub fn tag(&self) -> String {
        format!("{}.0", self.version)
    }

    /// Every distinct blob (configs, layers, manifests) with its digest, sorted by digest.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut all: Vec<&Blob> = self
            .images
            .iter()
            .flat_map(|(_, i)| i.blobs().chain([&i.manifest]))
            .collect();
        all.sort_by(|a, b| a.digest.cmp(&b.digest));
        all.dedup_by(|a, b| a.digest == b.digest);
        all
    }

    /// Bytes of every distinct blob: what the version weighs in a registry.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs().iter().map(|b| b.size()).sum()
    }

    /// Bytes of every distinct layer's tar.
    pub fn tar_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.tar_bytes).sum()
    }

    /// Writes the images into an OCI layout at `dir`, each named by its service.
    pub fn write_layout(&self, dir: &Path) -> Result<(), airlock_conformance::Error> {
        let named: Vec<(&str, &Image)> = self.images.iter().map(|(s, i)| (*s, i)).collect();
        airlock_conformance::write_oci_layout(dir, &named)
    }

    /// An `airlock add -f` application file for the images in the layout at `layout`:
    /// application `shop`, images `example.com/shop/SERVICE:TAG`.
    pub fn app_file(&self, layout: &Path) -> String {
        let mut app = format!("name: shop\nversion: \"{}\"\nimages:\n", self.tag());
        for (s, _) in &self.images {
            app.push_str(&format!(
                "  - source: oci:{}:{s}\n    as: example.com/shop/{s}:{}\n",
                layout.display(),
                self.tag()
            ));
        }
        app
    }
}

fn image(service: &str, version: u32, layers: &[Layer]) -> Image {
    let (os, arch) = airlock_conformance::host_platform();
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = Blob::json(
        OCI_CONFIG,
        &json!({"architecture": arch, "os": os,
                "config": {"Entrypoint": [format!("/opt/{service}/bin/{service}")],
                           "Labels": {"service": service, "version": format!("{version}.0")}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    );
    let blobs: Vec<Blob> = layers.iter().map(|l| l.blob.clone()).collect();
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                "layers": blobs.iter().map(Blob::descriptor).collect::<Vec<_>>()}),
    );
    Image {
        config,
        layers: blobs,
        manifest,
    }
}

fn layer(tar: &[u8], how: Gzip) -> Layer {
    let (gz, encoder) = match how {
        Gzip::Pigz => pigz(tar).map_or_else(|| (flate2(tar), "flate2 6"), |gz| (gz, "pigz -6")),
        Gzip::Flate2 => (flate2(tar), "flate2 6"),
    };
    Layer {
        blob: Blob::new(OCI_LAYER_GZIP, gz),
        tar_bytes: tar.len() as u64,
        diff_id: format!("sha256:{:x}", Sha256::digest(tar)),
        encoder,
    }
}

/// flate2 level 6, no name, mtime 0: what `airlock add --compress gzip` writes.
pub fn flate2(tar: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(tar).expect("compress into a Vec");
    e.finish().expect("compress into a Vec")
}

/// `pigz -6 -n`, or None when pigz is not installed or fails.
pub fn pigz(tar: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("pigz")
        .args(["-6", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let mut stdout = child.stdout.take()?;
    let mut out = Vec::new();
    let wrote = std::thread::scope(|s| {
        let writer = s.spawn(move || stdin.write_all(tar));
        let read = stdout.read_to_end(&mut out);
        writer.join().ok().map(|w| w.is_ok() && read.is_ok())
    });
    let ok = child.wait().is_ok_and(|s| s.success());
    (ok && wrote == Some(true)).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const TINY: AppSpec = AppSpec {
        seed: 1,
        base_entries: 200,
        runtime_entries: 50,
        app_entries: 20,
        max_file_bytes: 50_000,
    };

    #[test]
    fn version_2_changes_the_base_and_one_service() {
        let (v1, v2) = generate(&TINY, Gzip::Flate2);
        assert_eq!(v1.images.len(), SERVICES.len());
        for ((s, a), (_, b)) in v1.images.iter().zip(&v2.images) {
            assert_ne!(a.layers[0].digest, b.layers[0].digest, "{s} base");
            assert_eq!(a.layers[1].digest, b.layers[1].digest, "{s} runtime");
            let app_changed = a.layers[2].digest != b.layers[2].digest;
            assert_eq!(app_changed, *s == CHANGED_SERVICE, "{s} app");
        }
        let again = generate(&TINY, Gzip::Flate2).0;
        assert_eq!(
            v1.images[0].1.manifest.digest,
            again.images[0].1.manifest.digest
        );
    }
}
