//! What an export carries: the manifests and blobs reachable from the references asked for,
//! with their referrers (signatures, SBOMs), read from the store's manifest edges by OCI's one
//! manifest walk ([`airlock_oci::Walk`]). The store knows which digests are manifests and what
//! each references; no manifest is parsed here.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
};

use airlock_oci::{ImageRef, ManifestGraph, Walk};
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
}

/// Walks the store from `refs`: manifests, the blobs they reference and, with `referrers`, the
/// manifests that refer to them. Fails naming the manifest and blob when something reachable
/// is not stored.
pub fn collect(store: &Store, refs: &[RefEntry], referrers: bool) -> Result<Content> {
    let mut graph = Edges {
        store,
        referrers,
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
    Ok(graph.content)
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
    content: Content,
    seen_blobs: HashSet<Digest>,
    /// (repo, manifest) -> position in `content.manifests`.
    seen_manifests: HashMap<(String, Digest), usize>,
    /// What the reference being walked reaches.
    reach: BTreeSet<Digest>,
    /// Media type and children of each manifest entered and not yet left, innermost last.
    entered: Vec<(String, Vec<Digest>)>,
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
            for c in &m.children {
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
        let nodes = children
            .iter()
            .map(|c| Node {
                repo: repo.clone(),
                digest: c.clone(),
                parent: Some(digest.clone()),
                subject: None,
            })
            .collect();
        self.entered.push((media_type, children));
        Ok(Some(nodes))
    }

    fn leave(&mut self, node: &Node) -> Result<Vec<Node>> {
        let (repo, digest) = (&node.repo, &node.digest);
        let Some((media_type, children)) = self.entered.pop() else {
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

        let content = collect(&store, &[by_tag], false).unwrap();
        assert_eq!(content.blobs, [manifest_d.clone(), layer_d.clone()]);
        assert_eq!(content.manifests.len(), 1);
        assert_eq!(content.reach[0].len(), 2);
    }
}
