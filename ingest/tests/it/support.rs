use std::{path::Path, sync::Mutex};

use airlock_ingest::{AppReport, ImageReport, Progress, Summary};
use airlock_oci::Descriptor;
use airlock_store::{Digest, Store, StoreOptions};

pub fn store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("store")
}

/// Every call, in order, as a short line.
#[derive(Debug, Default)]
pub struct Recorder(pub Mutex<Vec<String>>);

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    fn push(&self, line: String) {
        self.0.lock().expect("lock").push(line);
    }
}

impl Progress for Recorder {
    fn plan(&self, blobs: usize, bytes: u64) {
        self.push(format!("plan {blobs} {bytes}"));
    }

    fn blob_present(&self, blob: &Descriptor) {
        self.push(format!("present {}", blob.digest));
    }

    fn blob_finished(&self, blob: &Descriptor, stored: bool) {
        self.push(format!("finished {} {stored}", blob.digest));
    }

    fn image(&self, r: &ImageReport) {
        let tags: Vec<String> = r.tags.iter().map(ToString::to_string).collect();
        self.push(format!(
            "image {:?} {} {}",
            r.outcome,
            r.repo,
            tags.join(",")
        ));
    }

    fn app(&self, r: &AppReport) {
        self.push(format!("app {:?} {}", r.outcome, r.repo));
    }

    fn done(&self, s: &Summary) {
        self.push(format!("done {} {} {}", s.images, s.added, s.blobs_stored));
    }
}

/// Writes `bytes` as a blob of the OCI layout at `dir`; returns its digest.
pub fn layout_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let path = dir.join("blobs/sha256").join(d.hex());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write blob");
    d
}

/// An OCI image manifest body over a config and layers (digest, size).
pub fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n)| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": n})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": airlock_oci::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0.to_string(), "size": config.1},
        "layers": layers,
    }))
    .expect("json")
}
