//! What an export carries: the manifests and blobs reachable from the references asked for,
//! with their referrers (signatures, SBOMs), read from the store's manifest edges. The store
//! knows which digests are manifests and what each references; no manifest is parsed here.

use std::collections::{BTreeSet, HashMap, HashSet};

use airlock_store::{Digest, Store};

use crate::{
    error::{Error, Result},
    index::{ManifestEntry, RefEntry},
};

/// A reference as the user writes it: `REPO:TAG` or `REPO@DIGEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The repository.
    pub repo: String,
    /// The tag, when one was named.
    pub tag: Option<String>,
    /// A digest, when one was named.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `REPO:TAG`, `REPO@DIGEST` or `REPO:TAG@DIGEST` (a registry host's `:port` is part
    /// of the repository).
    pub fn parse(text: &str) -> Result<Reference> {
        let invalid = |why: &'static str| Error::InvalidReference {
            text: text.to_owned(),
            why,
        };
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| invalid("the part after @ is not a digest"))?,
                ),
            ),
            None => (text, None),
        };
        let (repo, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
            _ => (name, None),
        };
        if repo.is_empty() {
            return Err(invalid("the repository is empty"));
        }
        if tag.is_none() && digest.is_none() {
            return Err(invalid("name a tag (REPO:TAG) or a digest (REPO@DIGEST)"));
        }
        Ok(Reference {
            repo: repo.to_owned(),
            tag,
            digest,
        })
    }

    /// Finds the manifest it names in `store`.
    pub fn resolve(&self, store: &Store) -> Result<RefEntry> {
        let shown = self.to_string();
        let digest = match (&self.digest, &self.tag) {
            (Some(d), _) => d.clone(),
            (None, Some(tag)) => store
                .tag(&self.repo, tag)
                .map_err(|e| Error::store(format!("looking up {shown}"), e))?
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
        let linked = store
            .manifest_media_type(&digest)
            .map_err(|e| Error::store(format!("looking up {shown}"), e))?;
        if linked.is_none() {
            return Err(Error::UnknownReference {
                reference: shown,
                why: "no manifest with that digest is stored",
            });
        }
        Ok(RefEntry {
            repo: self.repo.clone(),
            tag: self.tag.clone(),
            digest,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
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
    let mut walk = Walk {
        store,
        referrers,
        content: Content::default(),
        seen_blobs: HashSet::new(),
        seen_manifests: HashMap::new(),
    };
    for r in refs {
        let mut reach = BTreeSet::new();
        walk.visit(&r.repo, &r.digest, None, &mut reach, 0)?;
        walk.content.reach.push(reach);
    }
    Ok(walk.content)
}

/// Manifests nest (index, manifest, referrers of referrers) only so deep.
const MAX_DEPTH: usize = 16;

struct Walk<'a> {
    store: &'a Store,
    referrers: bool,
    content: Content,
    seen_blobs: HashSet<Digest>,
    /// (repo, manifest) -> position in `content.manifests`.
    seen_manifests: HashMap<(String, Digest), usize>,
}

impl Walk<'_> {
    fn visit(
        &mut self,
        repo: &str,
        digest: &Digest,
        subject: Option<(Digest, Vec<u8>)>,
        reach: &mut BTreeSet<Digest>,
        depth: usize,
    ) -> Result<()> {
        let key = (repo.to_owned(), digest.clone());
        if let Some(&at) = self.seen_manifests.get(&key) {
            if subject.is_some() && self.content.manifests[at].subject.is_none() {
                self.content.manifests[at].subject = subject;
            }
            self.reach_again(at, reach);
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Error::Walk {
                what: format!("manifests in {repo} nest deeper than {MAX_DEPTH} at {digest}"),
            });
        }
        let st = |e| Error::store(format!("reading manifest {digest} of {repo}"), e);
        let media_type = self.store.manifest_media_type(digest).map_err(st)?;
        let Some(media_type) = media_type else {
            return Err(Error::Walk {
                what: format!("manifest {digest} of {repo} is not stored"),
            });
        };
        self.blob(digest, reach)?;
        let children = self.store.manifest_children(digest).map_err(st)?;
        for child in &children {
            let is_manifest = self
                .store
                .manifest_media_type(child)
                .map_err(|e| Error::store(format!("reading {child} of {repo}"), e))?
                .is_some();
            if is_manifest {
                self.visit(repo, child, None, reach, depth + 1)?;
            } else if self
                .store
                .has_blob(child)
                .map_err(|e| Error::store(format!("reading {child} of {repo}"), e))?
            {
                self.blob(child, reach)?;
            } else {
                return Err(Error::Walk {
                    what: format!(
                        "manifest {digest} of {repo} references blob {child}, which is not stored"
                    ),
                });
            }
        }
        let at = self.content.manifests.len();
        self.content.manifests.push(ManifestEntry {
            repo: repo.to_owned(),
            digest: digest.clone(),
            media_type,
            children,
            subject,
        });
        self.seen_manifests.insert(key, at);
        if self.referrers {
            let found = self.store.referrers(repo, digest).map_err(st)?;
            for (referrer, descriptor) in found {
                let subject = Some((digest.clone(), descriptor));
                self.visit(repo, &referrer, subject, reach, depth + 1)?;
            }
        }
        Ok(())
    }

    fn blob(&mut self, digest: &Digest, reach: &mut BTreeSet<Digest>) -> Result<()> {
        if self.seen_blobs.insert(digest.clone()) {
            self.content.blobs.push(digest.clone());
        }
        reach.insert(digest.clone());
        Ok(())
    }

    /// A manifest met again from another reference: what it reaches counts for that one too.
    fn reach_again(&self, at: usize, reach: &mut BTreeSet<Digest>) {
        let mut stack = vec![at];
        while let Some(i) = stack.pop() {
            let m = &self.content.manifests[i];
            if !reach.insert(m.digest.clone()) && i != at {
                continue;
            }
            for c in &m.children {
                reach.insert(c.clone());
                if let Some(&j) = self.seen_manifests.get(&(m.repo.clone(), c.clone())) {
                    stack.push(j);
                }
            }
            for (key, &j) in &self.seen_manifests {
                let refers = self.content.manifests[j]
                    .subject
                    .as_ref()
                    .is_some_and(|(s, _)| *s == m.digest);
                if key.0 == m.repo && refers && !reach.contains(&key.1) {
                    stack.push(j);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = Reference::parse("localhost:5000/shop/web:1.2").unwrap();
        assert_eq!(r.repo, "localhost:5000/shop/web");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let d = Digest::sha256(b"x");
        let r = Reference::parse(&format!("shop/web@{d}")).unwrap();
        assert_eq!(
            (r.repo.as_str(), r.tag, r.digest),
            ("shop/web", None, Some(d))
        );
        for bad in ["shop/web", "localhost:5000/shop", ":tag", "a@sha256:zz"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Reference::parse("a/b:c").unwrap().to_string(),
            "a/b:c",
            "displays as written"
        );
    }
}
