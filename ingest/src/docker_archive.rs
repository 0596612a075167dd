//! `docker-archive:FILE`: what `docker save` (and `skopeo copy ... docker-archive:`) writes,
//! one or many images in one tar: `manifest.json` lists each image's config file, layer files
//! and tags. Both layouts are read: legacy (`<id>/layer.tar`, `<hex>.json`, layers often
//! symlinks to one another) and Docker 25's OCI-style `blobs/sha256/<hex>`.
//!
//! Layers stay uncompressed, so a layer's digest is its diff id from the config, unless
//! `--compress gzip` asks for airlock's deterministic gzip encoding: flate2 (miniz_oxide) level 6,
//! header with no name, mtime 0 and OS 255, the same bytes for the same layer on every run. The
//! store keeps such a layer as chunks of its tar plus preflate-rs reconstruction data, so the
//! exact gzip bytes can be rebuilt forever without re-running this encoder. The config
//! blob is kept as it is in the archive; its digest is recomputed and must match its file
//! name. The manifest is made here (OCI by default, Docker schema 2 on request) and is
//! deterministic, so adding the same archive twice gives the same digests.

use std::{
    collections::{BTreeMap, HashMap},
    io::{Read, Write},
    path::Path,
    sync::Arc,
};

use airlock_oci::{
    DOCKER_MANIFEST, Descriptor, Digest, OCI_MANIFEST, Platform, RepoName, Tag, Target,
    normalize_docker_reference,
};
use serde::{Deserialize, Serialize};

use crate::{
    archive::{SourceFs, TarIndex},
    digest::{to_oci, to_store},
    error::{Context as _, Result, err, fail},
    oci_layout,
    plan::{BlobSource, ImagePlan, ManifestNode, Walked, finish_platforms, latest},
    progress::Progress,
};

/// Largest `manifest.json` and image config accepted.
pub const MAX_METADATA_BYTES: u64 = 8 * 1024 * 1024;

/// The manifest flavour made for an archive's images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest, `application/vnd.oci.image.layer.v1.tar` layers.
    Oci,
    /// Docker schema 2, `application/vnd.docker.image.rootfs.diff.tar` layers.
    Docker,
}

/// How docker-archive layers are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// As they are in the archive, uncompressed: a layer's digest is its diff id.
    #[default]
    None,
    /// gzip'd with airlock's deterministic encoding (flate2 level 6, fixed header).
    Gzip,
}

impl ManifestFormat {
    fn types(self, compression: Compression) -> (&'static str, &'static str, &'static str) {
        let (manifest, config, layer) = self.plain_types();
        let layer = match (self, compression) {
            (_, Compression::None) => layer,
            (ManifestFormat::Oci, Compression::Gzip) => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
            (ManifestFormat::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
        };
        (manifest, config, layer)
    }

    fn plain_types(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ManifestFormat::Oci => (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            ),
            ManifestFormat::Docker => (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar",
            ),
        }
    }
}

/// One entry of `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: DescOut<'a>,
    layers: Vec<DescOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescOut<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
}

/// The archive's blobs: each digest read from one entry.
struct ArchiveBlobs {
    index: Arc<TarIndex>,
    entries: HashMap<Digest, String>,
    /// Layers served gzip'd by [`gzip_layer`], by their compressed digest.
    gzipped: HashMap<Digest, String>,
}

/// Gzip level of airlock's deterministic encoding.
const GZIP_LEVEL: u32 = 6;

/// Writes `src` gzip'd with airlock's deterministic encoding into `dst`.
fn gzip_layer(mut src: impl Read, dst: impl Write) -> std::io::Result<()> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(dst, flate2::Compression::new(GZIP_LEVEL));
    std::io::copy(&mut src, &mut enc)?;
    enc.finish()?.flush()
}

/// A writer that only hashes and counts.
struct HashCount(airlock_store::Hasher, u64);

impl Write for HashCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobSource for ArchiveBlobs {
    fn open_blob(&self, blob: &Descriptor) -> Result<Box<dyn std::io::Read + Send + '_>> {
        if let Some(name) = self.gzipped.get(&blob.digest) {
            // Encode on a thread into a pipe; a failure ends the stream early, and the store's
            // digest check refuses what it got.
            let (reader, writer) = std::io::pipe().context(|| "creating a pipe".into())?;
            let (index, name) = (self.index.clone(), name.clone());
            std::thread::spawn(move || {
                let result = match index.open(&name) {
                    Ok(Some((r, _))) => gzip_layer(r, writer),
                    Ok(None) => Err(std::io::Error::other(format!("missing {name}"))),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                if let Err(e) = result {
                    tracing::warn!("gzip of {name} stopped: {e}");
                }
            });
            return Ok(Box::new(reader));
        }
        let name = self
            .entries
            .get(&blob.digest)
            .ok_or_else(|| err!(Content, "no archive entry holds blob {}", blob.digest))?;
        match self.index.open(name)? {
            Some((r, _)) => Ok(r),
            None => fail!(Content, "missing {}", self.index.describe(name)),
        }
    }

    fn describe(&self, blob: &Descriptor) -> String {
        if let Some(name) = self.gzipped.get(&blob.digest) {
            return format!("{} (gzip'd)", self.index.describe(name));
        }
        match self.entries.get(&blob.digest) {
            Some(name) => self.index.describe(name),
            None => blob.digest.to_string(),
        }
    }
}

/// Plans every image of the archive at `path`.
pub fn plan(
    path: &Path,
    label: &str,
    format: ManifestFormat,
    compression: Compression,
    target: Option<&Target>,
    platforms: &[Platform],
    progress: &dyn Progress,
) -> Result<Vec<ImagePlan>> {
    let index = Arc::new(TarIndex::scan(path)?);
    let listing = index
        .read_small("manifest.json", MAX_METADATA_BYTES)?
        .ok_or_else(|| {
            err!(
                Content,
                "{label} is not a docker-archive: it has no manifest.json"
            )
        })?;
    let entries: Vec<Entry> = serde_json::from_slice(&listing)
        .map_err(|e| err!(Content, "{}: {e}", index.describe("manifest.json")))?;
    if entries.is_empty() {
        fail!(
            Content,
            "{}: lists no image",
            index.describe("manifest.json")
        );
    }
    if entries.len() > 1 && target.is_some_and(|t| t.tag.is_some()) {
        fail!(
            Content,
            "{label} holds {} images but --as names one tag; give --as REPO alone to keep each image's tags",
            entries.len()
        );
    }
    let (manifest_type, config_type, layer_type) = format.types(compression);
    let mut blob_entries: HashMap<Digest, String> = HashMap::new();
    let mut gzipped: HashMap<Digest, String> = HashMap::new();
    let mut images = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let what = format!(
            "{} image {i} ({})",
            index.describe("manifest.json"),
            entry.config
        );
        let config = index
            .read_small(&entry.config, MAX_METADATA_BYTES)?
            .ok_or_else(|| {
                err!(
                    Content,
                    "{what}: missing config {}",
                    index.describe(&entry.config)
                )
            })?;
        let config_digest = to_oci(&airlock_store::Digest::sha256(&config))?;
        if let Some(hex) = hex_in_name(&entry.config)
            && hex != config_digest.hex()
        {
            fail!(
                Content,
                "{}: content has digest {config_digest}, its name says sha256:{hex}",
                index.describe(&entry.config)
            );
        }
        let parsed: Config = serde_json::from_slice(&config).map_err(|e| {
            err!(
                Content,
                "{}: not an image config: {e}",
                index.describe(&entry.config)
            )
        })?;
        let diff_ids = &parsed.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            fail!(
                Content,
                "{what}: {} layers listed but the config has {} diff ids",
                entry.layers.len(),
                diff_ids.len()
            );
        }
        blob_entries.insert(config_digest.clone(), entry.config.clone());
        let mut layers = Vec::new();
        for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
            let digest: Digest = diff_id.parse().map_err(|e| {
                err!(
                    Content,
                    "{}: diff id {diff_id:?}: {e}",
                    index.describe(&entry.config)
                )
            })?;
            let (_, size) = index
                .open(layer)?
                .ok_or_else(|| err!(Content, "{what}: missing layer {}", index.describe(layer)))?;
            if let Some(hex) = hex_in_name(layer)
                && hex != digest.hex()
            {
                if is_containerd_export(&index, layer)? {
                    // Docker with the containerd image store saves the registry's compressed
                    // layers and manifests in an OCI layout: take the images from there, exact.
                    return oci_layout::plan(
                        index.clone(),
                        label,
                        None,
                        target,
                        platforms,
                        progress,
                    );
                }
                fail!(
                    Content,
                    "{}: its name says sha256:{hex}, the config's diff id is {digest}",
                    index.describe(layer)
                );
            }
            blob_entries
                .entry(digest.clone())
                .or_insert_with(|| layer.clone());
            let (digest, size) = if compression == Compression::Gzip {
                // A first pass of the encoder gives the digest the manifest needs.
                let (r, _) = index.open(layer)?.ok_or_else(|| {
                    err!(Content, "{what}: missing layer {}", index.describe(layer))
                })?;
                let algorithm = to_store(&digest)?.algorithm();
                let mut sink = HashCount(airlock_store::Hasher::new(algorithm), 0);
                gzip_layer(r, &mut sink)
                    .context(|| format!("gzip of {}", index.describe(layer)))?;
                let gz = to_oci(&sink.0.finish())?;
                gzipped.entry(gz.clone()).or_insert_with(|| layer.clone());
                (gz, sink.1)
            } else {
                (digest, size)
            };
            layers.push(Descriptor::new(layer_type, digest, size));
        }
        let body = ManifestOut {
            schema_version: 2,
            media_type: manifest_type,
            config: DescOut {
                media_type: config_type,
                digest: config_digest.to_string(),
                size: config.len() as u64,
            },
            layers: layers
                .iter()
                .map(|l| DescOut {
                    media_type: layer_type,
                    digest: l.digest.to_string(),
                    size: l.size,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&body).context(|| "writing a manifest".into())?;
        let node = ManifestNode::new(bytes, Some(manifest_type), None)?;
        let names = destinations(label, entry, target)?;
        let mut blobs = vec![Descriptor::new(
            config_type,
            config_digest,
            config.len() as u64,
        )];
        for l in layers {
            if !blobs.iter().any(|b| b.digest == l.digest) {
                blobs.push(l);
            }
        }
        images.push((entry, node, names, blobs));
    }
    let source = Arc::new(ArchiveBlobs {
        index,
        entries: blob_entries,
        gzipped,
    });
    let mut plans = Vec::new();
    for (entry, node, names, blobs) in images {
        for (repo, tags) in names {
            plans.push(ImagePlan {
                label: format!("{label} {}", entry.config),
                repo,
                tags,
                root: node.descriptor(),
                manifests: vec![node.clone()],
                extra_tags: Vec::new(),
                blobs: blobs.clone(),
                source: source.clone(),
            });
        }
    }
    // Single-platform images: their configs say their platform.
    let checks = plans
        .iter()
        .map(|p| Walked::with_platforms(platforms).check_platforms(p))
        .collect::<Result<Vec<_>>>()?;
    finish_platforms(label, platforms, checks, progress)?;
    Ok(plans)
}

/// Whether the archive is also an OCI layout whose layer `layer` is compressed: what Docker
/// with the containerd image store writes (its manifest.json names compressed blobs).
fn is_containerd_export(index: &TarIndex, layer: &str) -> Result<bool> {
    if !has_entry(index, "oci-layout")? || !has_entry(index, "index.json")? {
        return Ok(false);
    }
    let Some((mut r, _)) = index.open(layer)? else {
        return Ok(false);
    };
    let mut magic = [0u8; 4];
    let n = std::io::Read::read(&mut r, &mut magic)
        .context(|| "reading a layer's first bytes".into())?;
    let gzip = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let zstd = n >= 4 && magic == [0x28, 0xb5, 0x2f, 0xfd];
    Ok(gzip || zstd)
}

fn has_entry(index: &TarIndex, name: &str) -> Result<bool> {
    Ok(index.open(name)?.is_some())
}

/// Repositories and their tags for one image: `--as`, else its `RepoTags` normalized as docker
/// does (`nginx:1.27` is `docker.io/library/nginx`).
fn destinations(
    label: &str,
    entry: &Entry,
    target: Option<&Target>,
) -> Result<Vec<(RepoName, Vec<Tag>)>> {
    let refs = entry
        .repo_tags
        .iter()
        .flatten()
        .map(|t| normalize_docker_reference(t).context(|| format!("{label}: RepoTags entry {t:?}")))
        .collect::<Result<Vec<_>>>()?;
    if let Some(t) = target {
        let tags: Vec<Tag> = match &t.tag {
            Some(tag) => vec![tag.clone()],
            None => refs.iter().filter_map(|r| r.tag.clone()).collect(),
        };
        if tags.is_empty() {
            fail!(
                Content,
                "{label}: image {} has no tag: give --as REPO:TAG",
                entry.config
            );
        }
        return Ok(vec![(t.repo.clone(), dedup(tags))]);
    }
    if refs.is_empty() {
        fail!(
            Content,
            "{label}: image {} has no RepoTags: name it with --as REPO:TAG",
            entry.config
        );
    }
    let mut by_repo: BTreeMap<RepoName, Vec<Tag>> = BTreeMap::new();
    for r in refs {
        let tag = r.tag.clone().map_or_else(latest, Ok)?;
        by_repo.entry(r.repository().clone()).or_default().push(tag);
    }
    Ok(by_repo.into_iter().map(|(r, t)| (r, dedup(t))).collect())
}

fn dedup(mut v: Vec<Tag>) -> Vec<Tag> {
    v.sort();
    v.dedup();
    v
}

/// The sha256 hex a file name carries: `<hex>.json`, `<hex>.tar`, `blobs/sha256/<hex>`.
fn hex_in_name(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base
        .strip_suffix(".json")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    let is_hex = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit());
    let blob_dir = name.starts_with("blobs/sha256/") || !name.contains('/');
    (is_hex && blob_dir).then_some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_names() {
        let hex = "a".repeat(64);
        assert_eq!(hex_in_name(&format!("{hex}.json")), Some(hex.as_str()));
        assert_eq!(
            hex_in_name(&format!("blobs/sha256/{hex}")),
            Some(hex.as_str())
        );
        assert_eq!(hex_in_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(hex_in_name("abc.json"), None);
    }
}
