//! Content made for a check: random blobs, gzip'd tar layers, image configs, OCI and Docker
//! schema 2 manifests and indexes, built with serde_json. Every manifest is kept as the exact
//! bytes that are pushed, since the spec requires registries to return them unchanged.

use std::{collections::BTreeMap, io::Write};

use bytes::Bytes;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip'd tar layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The OCI empty descriptor's media type (the `{}` config of artifacts).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list, schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip'd tar layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A digest algorithm the spec's registries are expected to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The algorithm's name in a digest (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The digest of `bytes`, `algorithm:hex`.
    pub fn digest(self, bytes: &[u8]) -> String {
        let hex = match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        format!("{}:{hex}", self.name())
    }
}

/// Bytes with their media type and digest: a layer, a config, a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Bytes,
    pub digest: String,
}

impl Blob {
    /// A blob addressed by its sha256 digest.
    pub fn new(media_type: &str, bytes: impl Into<Bytes>) -> Blob {
        Blob::with_algorithm(Algorithm::Sha256, media_type, bytes)
    }

    /// A blob addressed by a digest of the given algorithm.
    pub fn with_algorithm(algorithm: Algorithm, media_type: &str, bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        Blob {
            media_type: media_type.to_owned(),
            digest: algorithm.digest(&bytes),
            bytes,
        }
    }

    /// A blob of `len` random bytes, typed `application/octet-stream`.
    pub fn random(len: usize) -> Blob {
        Blob::new("application/octet-stream", random_bytes(len))
    }

    /// A JSON document serialised compactly, as most clients push it.
    pub fn json(media_type: &str, value: &Value) -> Blob {
        Blob::new(media_type, value.to_string())
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Its OCI descriptor (`mediaType`, `digest`, `size`).
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size() })
    }
}

/// An image: a config, layers, and the manifest that lists them.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
}

impl Image {
    /// The blobs to push before the manifest: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// Manifest flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

/// Builds a random [`Image`] runnable on this host's platform (so containerd will unpack it),
/// or an artifact when given an artifact type, a subject or a custom config.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    layers: usize,
    layer_bytes: usize,
    format: Format,
    artifact_type: Option<String>,
    subject: Option<Value>,
    config: Option<Blob>,
    annotations: BTreeMap<String, String>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// One layer of about 4 KiB, OCI media types.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            layers: 1,
            layer_bytes: 4096,
            format: Format::Oci,
            artifact_type: None,
            subject: None,
            config: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The number of layers (zero is allowed).
    pub fn layers(mut self, layers: usize) -> Self {
        self.layers = layers;
        self
    }

    /// Random bytes in each layer, before compression.
    pub fn layer_bytes(mut self, bytes: usize) -> Self {
        self.layer_bytes = bytes;
        self
    }

    /// Docker schema 2 media types instead of OCI ones.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Sets the manifest's `artifactType`.
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    /// Sets the manifest's `subject` to another manifest.
    pub fn subject(mut self, subject: &Blob) -> Self {
        self.subject = Some(subject.descriptor());
        self
    }

    /// Replaces the generated image config (e.g. with the empty `{}` descriptor of artifacts).
    pub fn config(mut self, config: Blob) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Makes the layers, the config and the manifest.
    pub fn build(self) -> Image {
        let (layer_type, config_type, manifest_type) = match self.format {
            Format::Oci => (OCI_LAYER_GZIP, OCI_CONFIG, OCI_MANIFEST),
            Format::Docker => (DOCKER_LAYER_GZIP, DOCKER_CONFIG, DOCKER_MANIFEST),
        };
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for _ in 0..self.layers {
            let (layer, diff_id) = random_layer(layer_type, 2, self.layer_bytes / 2);
            layers.push(layer);
            diff_ids.push(diff_id);
        }
        let config = self.config.unwrap_or_else(|| {
            let (os, arch) = host_platform();
            Blob::json(
                config_type,
                &json!({
                    "architecture": arch,
                    "os": os,
                    // A nonce, so that images without layers still differ.
                    "config": {
                        "Env": ["PATH=/usr/bin:/bin"],
                        "Labels": { "org.example.nonce": hex::encode(random_bytes(8)) },
                    },
                    "rootfs": { "type": "layers", "diff_ids": diff_ids },
                }),
            )
        });
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        if let Some(artifact_type) = self.artifact_type {
            manifest["artifactType"] = json!(artifact_type);
        }
        if let Some(subject) = self.subject {
            manifest["subject"] = subject;
        }
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let manifest = Blob::json(manifest_type, &manifest);
        Image {
            config,
            layers,
            manifest,
        }
    }
}

/// An OCI index (or a Docker manifest list) over manifests, each with this host's platform
/// unless it is itself an index.
pub fn index_of(manifests: &[&Blob], format: Format) -> Blob {
    let (os, arch) = host_platform();
    let media_type = match format {
        Format::Oci => OCI_INDEX,
        Format::Docker => DOCKER_MANIFEST_LIST,
    };
    let entries: Vec<Value> = manifests
        .iter()
        .map(|m| {
            let mut d = m.descriptor();
            if m.media_type != OCI_INDEX && m.media_type != DOCKER_MANIFEST_LIST {
                d["platform"] = json!({ "architecture": arch, "os": os });
            }
            d
        })
        .collect();
    Blob::json(
        media_type,
        &json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": entries }),
    )
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// A gzip'd tar of `files` files of `file_bytes` random bytes each, and its diff id (the
/// sha256 of the uncompressed tar, which image configs list).
pub fn random_layer(media_type: &str, files: usize, file_bytes: usize) -> (Blob, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let tag = hex::encode(random_bytes(4));
    for i in 0..files {
        let data = random_bytes(file_bytes);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("conformance/{tag}-{i}"), &data[..])
            .expect("a short ASCII name written to a Vec");
    }
    let tar = tar.into_inner().expect("a tar written to a Vec");
    let diff_id = Algorithm::Sha256.digest(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip into a Vec");
    let gz = gz.finish().expect("gzip into a Vec");
    (Blob::new(media_type, gz), diff_id)
}

/// This host's platform in Go's spelling (`linux`, `amd64`), which image configs and containerd
/// use.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    ("linux", arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            Algorithm::Sha256.digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(
            Algorithm::Sha512
                .digest(b"")
                .starts_with("sha512:cf83e1357eefb8bd")
        );
    }

    #[test]
    fn layers_are_gzip_tars_with_their_diff_id() {
        let (layer, diff_id) = random_layer(OCI_LAYER_GZIP, 2, 100);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&layer.bytes[..]),
            &mut tar,
        )
        .expect("gzip");
        assert_eq!(Algorithm::Sha256.digest(&tar), diff_id);
        let entries = tar::Archive::new(&tar[..]).entries().expect("tar").count();
        assert_eq!(entries, 2);
    }

    #[test]
    fn manifests_list_their_blobs() {
        let image = ImageBuilder::new().layers(2).annotation("a", "b").build();
        let m: Value = serde_json::from_slice(&image.manifest.bytes).expect("json");
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["digest"], image.config.digest.as_str());
        assert_eq!(m["layers"].as_array().map(Vec::len), Some(2));
        assert_eq!(m["annotations"]["a"], "b");
        assert_eq!(image.blobs().count(), 3);
    }
}
