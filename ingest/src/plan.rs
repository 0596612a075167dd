//! What every source produces: an [`ImagePlan`] per image to add (its manifests as exact bytes,
//! the blobs they reach, the repository and tags), and the walk over a manifest graph that
//! sources with stored manifests (OCI layouts, upstream registries) share: OCI's one walk
//! ([`airlock_oci::Walk`]) over manifests fetched from a [`ManifestSource`].

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    sync::Arc,
};

use airlock_oci::{
    Descriptor, Digest, MAX_MANIFEST_BYTES, ManifestGraph, ManifestMediaType, ParsedManifest,
    Platform, RepoName, Tag, Walk, choose_platforms, is_image_config, parse_manifest,
    platform_list,
};

use crate::digest::{to_oci, to_store};
use crate::error::{Context as _, Contextual as _, Error, Result, err, fail};

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
    /// Child manifests left out on purpose (platforms not chosen with `--platform`).
    pub absent: Vec<Digest>,
}

impl ManifestNode {
    /// Parses `bytes`, which must hash to `expected` when given (else their sha256 names them).
    pub fn new(
        bytes: Vec<u8>,
        media_type: Option<&str>,
        expected: Option<&Digest>,
    ) -> Result<ManifestNode> {
        let digest = match expected {
            Some(d) => {
                let want = to_store(d)?;
                let actual = airlock_store::Digest::of(want.algorithm(), &bytes);
                if actual != want {
                    fail!(
                        Content,
                        "manifest {d} has digest {actual}: its content does not match"
                    );
                }
                d.clone()
            }
            None => to_oci(&airlock_store::Digest::sha256(&bytes))?,
        };
        let declared = media_type.filter(|t| ManifestMediaType::from_exact(t).is_some());
        let parsed = parse_manifest(declared, &bytes)
            .map_err(|e| err!(Content, "manifest {digest} is invalid: {e}"))?;
        Ok(ManifestNode {
            digest,
            bytes,
            parsed,
            absent: Vec::new(),
        })
    }

    /// Its descriptor (media type, digest, size).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.parsed.media_type.as_str(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// One image, index or artifact to add with everything it reaches.
#[derive(Clone)]
pub struct ImagePlan {
    /// What to call it in messages (`docker.io/library/nginx:1.27`).
    pub label: String,
    /// The repository it goes to.
    pub repo: RepoName,
    /// Tags to point at the root; empty only inside an app file (the app index reaches it).
    pub tags: Vec<Tag>,
    /// The root manifest.
    pub root: Descriptor,
    /// Every manifest, children before parents, each once; referrers after their subjects.
    pub manifests: Vec<ManifestNode>,
    /// Extra tags on manifests other than the root (cosign-style `sha256-<hex>.sig`).
    pub extra_tags: Vec<(Tag, Digest)>,
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

/// The manifests and blobs reached from one or more roots.
#[derive(Debug, Default)]
pub struct Walked {
    /// Children before parents.
    pub manifests: Vec<ManifestNode>,
    /// Leaf blobs, each once.
    pub blobs: Vec<Descriptor>,
    walk: Walk<Digest>,
    seen_blobs: HashSet<Digest>,
    /// Only these platforms of multi-platform indexes (all when empty).
    platforms: Vec<Platform>,
    /// Per platform: whether an index entry had it.
    matched: Vec<bool>,
    /// Manifests chosen as an index entry for their platform.
    by_platform: HashSet<Digest>,
}

impl Walked {
    /// A walk that keeps only `platforms` of multi-platform indexes (all when empty), by
    /// [`airlock_oci::choose_platforms`]: the indexes stay as they are, the other entries are
    /// recorded as their absent children.
    pub fn with_platforms(platforms: &[Platform]) -> Walked {
        Walked {
            platforms: platforms.to_vec(),
            matched: vec![false; platforms.len()],
            ..Walked::default()
        }
    }

    /// The platforms asked for that no index entry walked had, nor a single-platform image of
    /// `plan` (whose configs are read from its source); and a warning per single-platform
    /// image of a platform not asked for, which is added whole.
    pub fn check_platforms(&self, plan: &ImagePlan) -> Result<(Vec<Platform>, Vec<String>)> {
        let mut matched = self.matched.clone();
        let mut warnings = Vec::new();
        if self.platforms.is_empty() {
            return Ok((Vec::new(), warnings));
        }
        for m in &plan.manifests {
            if m.parsed.media_type.is_index() || self.by_platform.contains(&m.digest) {
                continue;
            }
            let Some(config) = m
                .parsed
                .config
                .as_ref()
                .filter(|c| is_image_config(&c.media_type) && c.size <= MAX_MANIFEST_BYTES)
            else {
                continue;
            };
            let mut bytes = Vec::new();
            plan.source
                .open_blob(config)?
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
                .context(|| format!("reading config {}", config.digest))?;
            let Some(p) = Platform::from_config(&bytes) else {
                continue;
            };
            let mut any = false;
            for (w, hit) in self.platforms.iter().zip(matched.iter_mut()) {
                if w.matches(&p) {
                    *hit = true;
                    any = true;
                }
            }
            if !any {
                warnings.push(format!(
                    "{}@{} is a single-platform image for {p}, not {}: it is added whole",
                    plan.repo,
                    m.digest,
                    platform_list(&self.platforms)
                ));
            }
        }
        let missing = self
            .platforms
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| p.clone())
            .collect();
        Ok((missing, warnings))
    }

    /// Walks from `root`, fetching every manifest it reaches that was not walked yet; returns
    /// the root's node.
    pub fn walk(&mut self, src: &dyn ManifestSource, root: &Descriptor) -> Result<ManifestNode> {
        let mut graph = Fetching {
            src,
            manifests: &mut self.manifests,
            blobs: &mut self.blobs,
            seen_blobs: &mut self.seen_blobs,
            entered: HashMap::new(),
            platforms: &self.platforms,
            matched: &mut self.matched,
            by_platform: &mut self.by_platform,
        };
        self.walk.visit(&mut graph, root.clone())?;
        self.manifests
            .iter()
            .find(|m| m.digest == root.digest)
            .cloned()
            .ok_or_else(|| err!(Content, "manifest {} was not walked", root.digest))
    }

    /// Whether the walk reached this manifest.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.walk.contains(digest)
    }
}

/// A [`ManifestSource`] as a graph for the walk, recording into a [`Walked`].
struct Fetching<'a> {
    src: &'a dyn ManifestSource,
    manifests: &'a mut Vec<ManifestNode>,
    blobs: &'a mut Vec<Descriptor>,
    seen_blobs: &'a mut HashSet<Digest>,
    /// Manifests fetched and not yet left.
    entered: HashMap<Digest, ManifestNode>,
    platforms: &'a [Platform],
    matched: &'a mut Vec<bool>,
    by_platform: &'a mut HashSet<Digest>,
}

impl ManifestGraph for Fetching<'_> {
    type Node = Descriptor;
    type Key = Digest;
    type Error = Error;

    fn key(&self, d: &Descriptor) -> Digest {
        d.digest.clone()
    }

    fn enter(&mut self, d: &Descriptor) -> Result<Option<Vec<Descriptor>>> {
        let mut node = fetch_node(self.src, d)?;
        let mut children = node.parsed.manifests.clone();
        if !self.platforms.is_empty() && node.parsed.media_type.is_index() {
            let choice = choose_platforms(&node.parsed, self.platforms);
            if choice.is_multi_platform() {
                if !choice.has_any() {
                    fail!(
                        Content,
                        "index {}: {}",
                        node.digest,
                        choice.none_message(self.platforms)
                    );
                }
                for (m, now) in self.matched.iter_mut().zip(&choice.matched) {
                    *m |= *now;
                }
                let kept: HashSet<Digest> = children
                    .iter()
                    .zip(&choice.chosen)
                    .filter(|(_, c)| **c)
                    .map(|(e, _)| e.digest.clone())
                    .collect();
                for (e, c) in children.iter().zip(&choice.chosen) {
                    if *c && e.platform.is_some() {
                        self.by_platform.insert(e.digest.clone());
                    }
                    if !*c && !kept.contains(&e.digest) && !node.absent.contains(&e.digest) {
                        node.absent.push(e.digest.clone());
                    }
                }
                children.retain(|e| kept.contains(&e.digest));
            }
        }
        self.entered.insert(node.digest.clone(), node);
        Ok(Some(children))
    }

    fn leave(&mut self, d: &Descriptor) -> Result<Vec<Descriptor>> {
        let node = self.entered.remove(&d.digest).ok_or_else(|| {
            err!(
                Content,
                "manifest {} was left without being fetched",
                d.digest
            )
        })?;
        for blob in node.parsed.blobs() {
            if blob.is_non_distributable() {
                continue;
            }
            if self.seen_blobs.insert(blob.digest.clone()) {
                self.blobs.push(blob.clone());
            }
        }
        self.manifests.push(node);
        Ok(Vec::new())
    }

    fn in_child(&self, parent: &Descriptor, err: Error) -> Error {
        err.within(format!("in index {}", parent.digest))
    }
}

/// After a source is planned with `--platform`: fails naming the platforms asked for that none
/// of its images has (`checks` holds each walk's [`Walked::check_platforms`]), else notes a
/// warning per single-platform image of another platform.
pub(crate) fn finish_platforms(
    label: &str,
    platforms: &[Platform],
    checks: Vec<(Vec<Platform>, Vec<String>)>,
    progress: &dyn crate::progress::Progress,
) -> Result<()> {
    if platforms.is_empty() || checks.is_empty() {
        return Ok(());
    }
    let missing: Vec<Platform> = platforms
        .iter()
        .filter(|p| checks.iter().all(|(m, _)| m.contains(p)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        fail!(
            Content,
            "{label}: no image has platform {} (a single-platform image of another platform is \
             added only when a platform asked for is found elsewhere in the source)",
            platform_list(&missing)
        );
    }
    for (_, warnings) in checks {
        for w in warnings {
            progress.note(&format!("warning: {w}"));
        }
    }
    Ok(())
}

/// The tag of an image named without one.
pub(crate) fn latest() -> Result<Tag> {
    "latest".parse().context(|| "tag latest".into())
}

/// Fetches and checks one manifest.
pub fn fetch_node(src: &dyn ManifestSource, d: &Descriptor) -> Result<ManifestNode> {
    if d.size > MAX_MANIFEST_BYTES {
        fail!(
            Content,
            "manifest {} is {} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
            d.digest,
            d.size
        );
    }
    let bytes = src.fetch_manifest(d)?;
    if bytes.len() as u64 != d.size {
        fail!(
            Content,
            "manifest {} is {} bytes, its descriptor says {}",
            d.digest,
            bytes.len(),
            d.size
        );
    }
    ManifestNode::new(bytes, Some(&d.media_type), Some(&d.digest))
}

#[cfg(test)]
mod tests {
    use airlock_oci::OCI_INDEX;

    use super::*;

    #[test]
    fn a_manifest_whose_bytes_differ_is_refused() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let d = to_oci(&airlock_store::Digest::sha256(b"other")).expect("digest");
        let e = ManifestNode::new(body.to_vec(), Some(OCI_INDEX), Some(&d)).expect_err("mismatch");
        assert!(e.to_string().contains("does not match"), "{e}");
        let n = ManifestNode::new(body.to_vec(), Some(OCI_INDEX), None).expect("ok");
        assert_eq!(
            n.digest.to_string(),
            airlock_store::Digest::sha256(body).to_string()
        );
    }
}
