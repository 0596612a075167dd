//! What every source produces: an [`ImagePlan`] per image to add (its manifests as exact bytes,
//! the blobs they reach, the repository and tags), and the walk over a manifest graph that
//! sources with stored manifests (OCI layouts, upstream registries) share.

use std::{
    collections::{BTreeMap, HashSet},
    io::Read,
    sync::Arc,
};

use airlock_registry::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST,
    ParsedManifest, parse_manifest,
};
use airlock_store::Digest;
use anyhow::{Context as _, Result, bail};

/// Deepest nesting of indexes followed (an index of indexes of manifests is depth 2).
pub const MAX_INDEX_DEPTH: usize = 8;

/// Where the bytes of leaf blobs (configs, layers) come from.
pub trait BlobSource: Send + Sync {
    /// A reader over the blob's bytes; the store verifies digest and size while reading.
    fn open_blob(&self, blob: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;

    /// Where the blob comes from, for errors ("archive entry 12ab.../layer.tar").
    fn describe(&self, blob: &Descriptor) -> String;
}

/// A manifest to store: exact bytes, and what it references.
#[derive(Clone, Debug)]
pub struct ManifestNode {
    /// Its digest (verified against the bytes).
    pub digest: Digest,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// What it references.
    pub parsed: ParsedManifest,
}

impl ManifestNode {
    /// Parses `bytes`, which must hash to `expected` (when given) and be `size` long.
    pub fn new(
        bytes: Vec<u8>,
        media_type: Option<&str>,
        expected: Option<&Digest>,
    ) -> Result<ManifestNode> {
        let digest = match expected {
            Some(d) => {
                let actual = Digest::of(d.algorithm(), &bytes);
                if actual != *d {
                    bail!("manifest {d} has digest {actual}: its content does not match");
                }
                actual
            }
            None => Digest::sha256(&bytes),
        };
        let declared = media_type.filter(|t| is_manifest_type(t));
        let parsed = parse_manifest(declared, &bytes)
            .map_err(|e| anyhow::anyhow!("manifest {digest} is invalid: {e}"))?;
        Ok(ManifestNode {
            digest,
            bytes,
            parsed,
        })
    }

    /// Its descriptor (media type, digest, size).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.parsed.media_type.as_str().to_owned(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        }
    }
}

/// Whether a media type names a manifest or index the store keeps as such.
pub fn is_manifest_type(media_type: &str) -> bool {
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    .contains(&media_type)
}

/// One image, index or artifact to add with everything it reaches.
#[derive(Clone)]
pub struct ImagePlan {
    /// What to call it in messages (`docker.io/library/nginx:1.27`).
    pub label: String,
    /// The repository it goes to.
    pub repo: String,
    /// Tags to point at the root; empty only inside an app file (the app index reaches it).
    pub tags: Vec<String>,
    /// The root manifest.
    pub root: Descriptor,
    /// Every manifest, children before parents, each once; referrers after their subjects.
    pub manifests: Vec<ManifestNode>,
    /// Extra tags on manifests other than the root (cosign-style `sha256-<hex>.sig`).
    pub extra_tags: Vec<(String, Digest)>,
    /// Leaf blobs the manifests reach, each once (non-distributable layers left out).
    pub blobs: Vec<Descriptor>,
    /// Where the blobs' bytes come from.
    pub source: Arc<dyn BlobSource>,
}

impl std::fmt::Debug for ImagePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePlan")
            .field("label", &self.label)
            .field("repo", &self.repo)
            .field("tags", &self.tags)
            .field("root", &self.root.digest)
            .finish_non_exhaustive()
    }
}

/// Where manifests come from while walking a graph.
pub trait ManifestSource {
    /// The bytes of the manifest `d` names (at most [`MAX_MANIFEST_BYTES`]); the walk checks
    /// digest and size.
    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>>;
}

/// The manifests and blobs reached from one root.
#[derive(Debug, Default)]
pub struct Walked {
    /// Children before parents.
    pub manifests: Vec<ManifestNode>,
    /// Leaf blobs, each once.
    pub blobs: Vec<Descriptor>,
    seen: HashSet<Digest>,
    seen_blobs: HashSet<Digest>,
}

impl Walked {
    /// Walks from `root`, fetching every manifest it reaches; returns the root's node.
    pub fn walk(&mut self, src: &dyn ManifestSource, root: &Descriptor) -> Result<ManifestNode> {
        self.walk_at(src, root, 0)
    }

    fn walk_at(
        &mut self,
        src: &dyn ManifestSource,
        d: &Descriptor,
        depth: usize,
    ) -> Result<ManifestNode> {
        if depth > MAX_INDEX_DEPTH {
            bail!(
                "manifest {} is nested more than {MAX_INDEX_DEPTH} indexes deep",
                d.digest
            );
        }
        let node = fetch_node(src, d)?;
        if self.seen.contains(&node.digest) {
            return Ok(node);
        }
        for child in &node.parsed.manifests {
            self.walk_at(src, child, depth + 1)
                .with_context(|| format!("in index {}", node.digest))?;
        }
        for blob in node.parsed.blobs() {
            if blob.is_non_distributable() {
                continue;
            }
            if self.seen_blobs.insert(blob.digest.clone()) {
                self.blobs.push(blob.clone());
            }
        }
        self.seen.insert(node.digest.clone());
        self.manifests.push(node.clone());
        Ok(node)
    }

    /// Whether the walk reached this manifest.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.seen.contains(digest)
    }
}

/// Fetches and checks one manifest.
pub fn fetch_node(src: &dyn ManifestSource, d: &Descriptor) -> Result<ManifestNode> {
    if d.size > MAX_MANIFEST_BYTES {
        bail!(
            "manifest {} is {} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
            d.digest,
            d.size
        );
    }
    let bytes = src.fetch_manifest(d)?;
    if bytes.len() as u64 != d.size {
        bail!(
            "manifest {} is {} bytes, its descriptor says {}",
            d.digest,
            bytes.len(),
            d.size
        );
    }
    ManifestNode::new(bytes, Some(&d.media_type), Some(&d.digest))
}

/// `os/arch[/variant]` as given to `--platform`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).to_owned(),
                arch: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: (*os).to_owned(),
                    arch: (*arch).to_owned(),
                    variant: Some((*variant).to_owned()),
                })
            }
            _ => bail!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64/v8"),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platform of an index entry, from the raw index bytes (the parsed descriptor drops it).
pub fn entry_platforms(index: &[u8]) -> Vec<Option<Platform>> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(index) else {
        return Vec::new();
    };
    let Some(entries) = v["manifests"].as_array() else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let p = &e["platform"];
            Some(Platform {
                os: p["os"].as_str()?.to_owned(),
                arch: p["architecture"].as_str()?.to_owned(),
                variant: p["variant"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

impl Platform {
    /// Whether an index entry's platform is this one (arm64's variant v8 is its default).
    pub fn matches(&self, entry: &Platform) -> bool {
        let default_variant = |p: &Platform| match (p.arch.as_str(), &p.variant) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.clone(),
        };
        self.os == entry.os
            && self.arch == entry.arch
            && (self.variant.is_none() || default_variant(self) == default_variant(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p: Platform = "linux/arm64".parse().expect("platform");
        let v8: Platform = "linux/arm64/v8".parse().expect("platform");
        assert!(p.matches(&v8) && v8.matches(&p));
        let arm7: Platform = "linux/arm/v7".parse().expect("platform");
        let arm6: Platform = "linux/arm/v6".parse().expect("platform");
        assert!(!arm7.matches(&arm6));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v1".parse::<Platform>().is_err());
        assert_eq!(v8.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn a_manifest_whose_bytes_differ_is_refused() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let d = Digest::sha256(b"other");
        let e = ManifestNode::new(body.to_vec(), Some(OCI_INDEX), Some(&d)).expect_err("mismatch");
        assert!(e.to_string().contains("does not match"), "{e}");
        let n = ManifestNode::new(body.to_vec(), Some(OCI_INDEX), None).expect("ok");
        assert_eq!(n.digest, Digest::sha256(body));
    }
}
