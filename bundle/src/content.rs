//! What an export carries: the manifests and blobs reachable from the references asked for,
//! with their referrers (signatures, SBOMs), read from the store's manifest edges by OCI's one
//! manifest walk ([`airlock_oci::Walk`]). The store knows which digests are manifests and what
//! each references; a manifest is parsed here only to choose platforms (`export --platform`):
//! of a multi-platform index only the entries [`airlock_oci::choose_platforms`] chooses are
//! walked, the others are listed as absent children of the index, which stays as it is.
//! Children the store itself records as absent (a site that received only some platforms)
//! travel as absent too.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
};

use airlock_oci::{
    ImageRef, MAX_MANIFEST_BYTES, ManifestGraph, ManifestMediaType, Platform, Walk,
    choose_platforms, is_image_config, parse_manifest, platform_list,
};
use airlock_store::{Digest, Store};

use crate::{
    error::{Error, Result},
    index::{ManifestEntry, RefEntry},
};

/// Finds the manifest `r` names in `store`: its digest when it has one, else its tag's target.
pub fn resolve(store: &Store, r: &ImageRef) -> Result<RefEntry> {
    let shown = r.to_string();
    let lookup = |e| Error::store(format!("looking up {shown}"), e);
    let digest = match (&r.digest, &r.tag) {
        (Some(d), _) => d.as_str().parse::<Digest>().map_err(lookup)?,
        (None, Some(tag)) => store
            .tag(r.repo.as_str(), tag.as_str())
            .map_err(lookup)?
            .ok_or_else(|| Error::UnknownReference {
                reference: shown.clone(),
                why: "no such tag in the store (see `airlock ls`)",
            })?,
        (None, None) => {
            return Err(Error::UnknownReference {
                reference: shown,
                why: "it names neither a tag nor a digest",
            });
        }
    };
    if store
        .manifest_media_type(&digest)
        .map_err(lookup)?
        .is_none()
    {
        return Err(Error::UnknownReference {
            reference: shown,
            why: "no manifest with that digest is stored",
        });
    }
    Ok(RefEntry {
        repo: r.repo.to_string(),
        tag: r.tag.as_ref().map(ToString::to_string),
        digest,
    })
}

/// Everything reachable from some references.
#[derive(Clone, Debug, Default)]
pub struct Content {
    /// Manifests, children before parents, each once per repository.
    pub manifests: Vec<ManifestEntry>,
    /// Every blob digest (manifests included), each once, in the order first reached.
    pub blobs: Vec<Digest>,
    /// For each reference (by position), the blobs it reaches.
    pub reach: Vec<BTreeSet<Digest>>,
    /// Single-platform images of a platform not asked for (`--platform`), which travel whole:
    /// one line each, naming the image and its platform.
    pub warnings: Vec<String>,
}

/// Walks the store from `refs`: manifests, the blobs they reference and, with `referrers`, the
/// manifests that refer to them; of multi-platform indexes only the entries for `platforms`
/// (all when empty). Fails naming the manifest and blob when something reachable is not
/// stored, naming the index when it has none of `platforms`, and naming a platform no image
/// reached has.
pub fn collect(
    store: &Store,
    refs: &[RefEntry],
    referrers: bool,
    platforms: &[Platform],
) -> Result<Content> {
    let mut graph = Edges {
        store,
        referrers,
        platforms,
        matched: vec![false; platforms.len()],
        by_platform: HashSet::new(),
        content: Content::default(),
        seen_blobs: HashSet::new(),
        seen_manifests: HashMap::new(),
        reach: BTreeSet::new(),
        entered: Vec::new(),
    };
    let mut walk = Walk::new();
    for r in refs {
        let root = Node {
            repo: r.repo.clone(),
            digest: r.digest.clone(),
            parent: None,
            subject: None,
        };
        walk.visit(&mut graph, root)?;
        let reach = std::mem::take(&mut graph.reach);
        graph.content.reach.push(reach);
    }
    let unmatched: Vec<Platform> = platforms
        .iter()
        .zip(&graph.matched)
        .filter(|(_, m)| !**m)
        .map(|(p, _)| p.clone())
        .collect();
    if !unmatched.is_empty() {
        return Err(Error::Walk {
            what: format!(
                "no image exported has platform {} (see `airlock ls` for the platforms each \
                 index holds)",
                platform_list(&unmatched)
            ),
        });
    }
    Ok(graph.content)
}

/// A manifest's or config's bytes, refusing one larger than a manifest may be.
fn read_small(store: &Store, digest: &Digest, what: &str) -> Result<Vec<u8>> {
    let st = |e| Error::store(format!("reading {what} {digest}"), e);
    let size = store.stat_blob(digest).map_err(st)?.map_or(0, |s| s.size);
    if size > MAX_MANIFEST_BYTES {
        return Err(Error::Walk {
            what: format!("{what} {digest} is {size} bytes, more than {MAX_MANIFEST_BYTES}"),
        });
    }
    store.read_blob(digest).map_err(st)
}

fn store_digest(d: &airlock_oci::Digest) -> Result<Digest> {
    d.as_str()
        .parse()
        .map_err(|e| Error::store(format!("digest {d}"), e))
}

/// A digest met in a repository: a root or referrer (no parent), or a child of `parent`.
struct Node {
    repo: String,
    digest: Digest,
    parent: Option<Digest>,
    /// For a referrer: its subject and its descriptor bytes in the subject's list.
    subject: Option<(Digest, Vec<u8>)>,
}

/// What the walk keeps manifests apart by: the same manifest in two repositories is two entries.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    repo: String,
    digest: Digest,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.digest, self.repo)
    }
}

/// The store's manifest edges as a graph, collecting [`Content`] as it is walked.
struct Edges<'a> {
    store: &'a Store,
    referrers: bool,
    /// The platforms asked for (all when empty).
    platforms: &'a [Platform],
    /// Per platform asked for: whether an index entry or a single-platform image has it.
    matched: Vec<bool>,
    /// Manifests chosen as an index entry for their platform.
    by_platform: HashSet<Digest>,
    content: Content,
    seen_blobs: HashSet<Digest>,
    /// (repo, manifest) -> position in `content.manifests`.
    seen_manifests: HashMap<(String, Digest), usize>,
    /// What the reference being walked reaches.
    reach: BTreeSet<Digest>,
    /// Media type, children and absent children of each manifest entered and not yet left,
    /// innermost last.
    entered: Vec<(String, Vec<Digest>, Vec<Digest>)>,
}

impl Edges<'_> {
    fn blob(&mut self, digest: &Digest) {
        if self.seen_blobs.insert(digest.clone()) {
            self.content.blobs.push(digest.clone());
        }
        self.reach.insert(digest.clone());
    }

    /// A manifest met again from another reference: what it reaches counts for that one too.
    fn reach_again(&mut self, at: usize) {
        let mut stack = vec![at];
        while let Some(i) = stack.pop() {
            let m = &self.content.manifests[i];
            if !self.reach.insert(m.digest.clone()) && i != at {
                continue;
            }
            for c in m.children.iter().filter(|c| !m.absent.contains(c)) {
                self.reach.insert(c.clone());
                if let Some(&j) = self.seen_manifests.get(&(m.repo.clone(), c.clone())) {
                    stack.push(j);
                }
            }
            for (key, &j) in &self.seen_manifests {
                let refers = self.content.manifests[j]
                    .subject
                    .as_ref()
                    .is_some_and(|(s, _)| *s == m.digest);
                if key.0 == m.repo && refers && !self.reach.contains(&key.1) {
                    stack.push(j);
                }
            }
        }
    }
}

impl Edges<'_> {
    /// With platforms asked for: the entries of a multi-platform index not chosen (an error when
    /// it has none of them); for a single-platform image of another platform, a warning.
    fn choose(&mut self, repo: &str, digest: &Digest, media_type: &str) -> Result<Vec<Digest>> {
        let Some(kind) = ManifestMediaType::from_exact(media_type) else {
            return Ok(Vec::new());
        };
        if !kind.is_index() && self.by_platform.contains(digest) {
            return Ok(Vec::new());
        }
        let bytes = read_small(self.store, digest, "manifest")?;
        let parsed = parse_manifest(Some(media_type), &bytes).map_err(|e| Error::Walk {
            what: format!("manifest {digest} of {repo} does not parse: {e}"),
        })?;
        if !kind.is_index() {
            self.check_single_platform(repo, digest, &parsed)?;
            return Ok(Vec::new());
        }
        let choice = choose_platforms(&parsed, self.platforms);
        if !choice.is_multi_platform() {
            return Ok(Vec::new());
        }
        if !choice.has_any() {
            return Err(Error::Walk {
                what: format!("{repo}@{digest}: {}", choice.none_message(self.platforms)),
            });
        }
        for (m, now) in self.matched.iter_mut().zip(&choice.matched) {
            *m |= *now;
        }
        let mut kept = HashSet::new();
        let mut left = Vec::new();
        for (e, chosen) in parsed.manifests.iter().zip(&choice.chosen) {
            let d = store_digest(&e.digest)?;
            if *chosen {
                if e.platform.is_some() {
                    self.by_platform.insert(d.clone());
                }
                kept.insert(d);
            } else {
                left.push(d);
            }
        }
        // The same manifest may be listed for two platforms: one chosen keeps it.
        left.retain(|d| !kept.contains(d));
        Ok(left)
    }

    /// An image manifest not chosen from an index: its config's platform, when it says one,
    /// counts as found when asked for, else the image travels whole with a warning.
    fn check_single_platform(
        &mut self,
        repo: &str,
        digest: &Digest,
        parsed: &airlock_oci::ParsedManifest,
    ) -> Result<()> {
        let Some(config) = parsed
            .config
            .as_ref()
            .filter(|c| is_image_config(&c.media_type))
        else {
            return Ok(());
        };
        let config_digest = store_digest(&config.digest)?;
        if !self
            .store
            .has_blob(&config_digest)
            .map_err(|e| Error::store(format!("reading config {config_digest}"), e))?
        {
            return Ok(());
        }
        let bytes = read_small(self.store, &config_digest, "config")?;
        let Some(p) = Platform::from_config(&bytes) else {
            return Ok(());
        };
        let mut any = false;
        for (w, m) in self.platforms.iter().zip(self.matched.iter_mut()) {
            if w.matches(&p) {
                *m = true;
                any = true;
            }
        }
        let note = format!(
            "{repo}@{digest} is a single-platform image for {p}, not {}: it travels whole",
            platform_list(self.platforms)
        );
        if !any && !self.content.warnings.contains(&note) {
            self.content.warnings.push(note);
        }
        Ok(())
    }
}

impl ManifestGraph for Edges<'_> {
    type Node = Node;
    type Key = Key;
    type Error = Error;

    fn key(&self, node: &Node) -> Key {
        Key {
            repo: node.repo.clone(),
            digest: node.digest.clone(),
        }
    }

    fn enter(&mut self, node: &Node) -> Result<Option<Vec<Node>>> {
        let (repo, digest) = (&node.repo, &node.digest);
        let st = |e| Error::store(format!("reading {digest} of {repo}"), e);
        let Some(media_type) = self.store.manifest_media_type(digest).map_err(st)? else {
            return match &node.parent {
                Some(_) if self.store.has_blob(digest).map_err(st)? => {
                    self.blob(digest);
                    Ok(None)
                }
                Some(parent) => Err(Error::Walk {
                    what: format!(
                        "manifest {parent} of {repo} references blob {digest}, which is not stored"
                    ),
                }),
                None => Err(Error::Walk {
                    what: format!("manifest {digest} of {repo} is not stored"),
                }),
            };
        };
        self.blob(digest);
        let children = self
            .store
            .manifest_children(digest)
            .map_err(|e| Error::store(format!("reading manifest {digest} of {repo}"), e))?;
        let mut absent = Vec::new();
        for c in self.store.absent_children(digest).map_err(st)? {
            if !self.store.has_blob(&c).map_err(st)? {
                absent.push(c);
            }
        }
        if !self.platforms.is_empty() {
            absent.extend(self.choose(repo, digest, &media_type)?);
        }
        let absent: Vec<Digest> = children
            .iter()
            .filter(|c| absent.contains(c))
            .cloned()
            .collect();
        let nodes = children
            .iter()
            .filter(|c| !absent.contains(c))
            .map(|c| Node {
                repo: repo.clone(),
                digest: c.clone(),
                parent: Some(digest.clone()),
                subject: None,
            })
            .collect();
        self.entered.push((media_type, children, absent));
        Ok(Some(nodes))
    }

    fn leave(&mut self, node: &Node) -> Result<Vec<Node>> {
        let (repo, digest) = (&node.repo, &node.digest);
        let Some((media_type, children, absent)) = self.entered.pop() else {
            return Err(Error::Walk {
                what: format!("manifest {digest} of {repo} was left without being entered"),
            });
        };
        let at = self.content.manifests.len();
        self.content.manifests.push(ManifestEntry {
            repo: repo.clone(),
            digest: digest.clone(),
            media_type,
            children,
            absent,
            subject: node.subject.clone(),
        });
        self.seen_manifests
            .insert((repo.clone(), digest.clone()), at);
        if !self.referrers {
            return Ok(Vec::new());
        }
        let found = self
            .store
            .referrers(repo, digest)
            .map_err(|e| Error::store(format!("reading manifest {digest} of {repo}"), e))?;
        Ok(found
            .into_iter()
            .map(|(referrer, descriptor)| Node {
                repo: repo.clone(),
                digest: referrer,
                parent: None,
                subject: Some((digest.clone(), descriptor)),
            })
            .collect())
    }

    fn revisit(&mut self, node: Node) -> Result<()> {
        let Some(&at) = self
            .seen_manifests
            .get(&(node.repo.clone(), node.digest.clone()))
        else {
            return Ok(());
        };
        if node.subject.is_some() && self.content.manifests[at].subject.is_none() {
            self.content.manifests[at].subject = node.subject;
        }
        self.reach_again(at);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use airlock_store::{PutOptions, RepoChange, StoreOptions};

    use super::*;

    #[test]
    fn references_resolve_or_say_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let layer = b"layer".to_vec();
        let layer_d = Digest::sha256(&layer);
        let manifest = b"{\"manifest\":1}".to_vec();
        let manifest_d = Digest::sha256(&manifest);
        for bytes in [&layer, &manifest] {
            store
                .put_blob(&Digest::sha256(bytes), &bytes[..], PutOptions::default())
                .unwrap();
        }
        store
            .apply_repo_changes(&[
                RepoChange::LinkBlob {
                    repo: "shop/web".into(),
                    digest: layer_d.clone(),
                },
                RepoChange::LinkManifest {
                    repo: "shop/web".into(),
                    digest: manifest_d.clone(),
                    children: vec![layer_d.clone()],
                    subject: None,
                    media_type: airlock_oci::OCI_MANIFEST.into(),
                },
                RepoChange::SetTag {
                    repo: "shop/web".into(),
                    tag: "1.0".into(),
                    digest: manifest_d.clone(),
                },
            ])
            .unwrap();
        let by_tag = resolve(&store, &"shop/web:1.0".parse().unwrap()).unwrap();
        assert_eq!(by_tag.digest, manifest_d);
        let by_digest: ImageRef = format!("shop/web@{manifest_d}").parse().unwrap();
        assert_eq!(resolve(&store, &by_digest).unwrap().tag, None);
        let missing = resolve(&store, &"shop/web:2.0".parse().unwrap()).unwrap_err();
        assert!(missing.to_string().contains("no such tag"), "{missing}");
        let blob: ImageRef = format!("shop/web@{layer_d}").parse().unwrap();
        assert!(resolve(&store, &blob).is_err(), "a layer is not a manifest");

        let content = collect(&store, &[by_tag], false, &[]).unwrap();
        assert_eq!(content.blobs, [manifest_d.clone(), layer_d.clone()]);
        assert_eq!(content.manifests.len(), 1);
        assert_eq!(content.reach[0].len(), 2);
    }
}
