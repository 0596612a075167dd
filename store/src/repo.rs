//! Repositories over the blob store: links, tags with history, manifest edges, referrers and
//! upload sessions. The store does not read manifests: callers say what a manifest references.

use crate::{
    AppAction, Digest, Error, Result, Store,
    apps::record_event,
    index::{LinkKind, TagEvent, WriteTx},
    store::now,
};

/// One change to repositories; a list of them is applied in one transaction, so that tags of
/// a bundle or a push move together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoChange {
    /// Make a stored blob part of a repository (a layer or config upload, a mount). Restarts
    /// the blob's GC grace period: the manifest that will reference it may be on its way.
    LinkBlob {
        /// Repository name.
        repo: String,
        /// The blob.
        digest: Digest,
    },
    /// Make a stored manifest part of a repository, recording what it references (for GC) and
    /// the subject it refers to, with the descriptor bytes the referrers API will list.
    LinkManifest {
        /// Repository name.
        repo: String,
        /// The manifest blob.
        digest: Digest,
        /// Digests of blobs and manifests it references.
        children: Vec<Digest>,
        /// Subject digest and the referrer's descriptor (opaque bytes).
        subject: Option<(Digest, Vec<u8>)>,
        /// The media type the manifest was pushed with, served back with it.
        media_type: String,
    },
    /// Records that a manifest (linked by an earlier change of the list, or before) is linked
    /// without some of its children on purpose: the platforms an export or an add left out
    /// (`--platform`), non-distributable layers. `verify` does not report them missing. Only
    /// children among the manifest's recorded edges and not stored when the list applies are
    /// recorded; a later `LinkManifest` of the same manifest forgets them all (a link with all
    /// its children), so list a `MarkAbsent` after each partial link.
    MarkAbsent {
        /// The manifest.
        digest: Digest,
        /// Children it was linked without.
        children: Vec<Digest>,
    },
    /// Point a tag at a manifest linked in the same repository.
    SetTag {
        /// Repository name.
        repo: String,
        /// Tag name.
        tag: String,
        /// The manifest.
        digest: Digest,
    },
    /// Remove a tag (no error if absent).
    DeleteTag {
        /// Repository name.
        repo: String,
        /// Tag name.
        tag: String,
    },
    /// Remove a manifest from a repository, with the tags that point at it and its referrer
    /// entry.
    UnlinkManifest {
        /// Repository name.
        repo: String,
        /// The manifest.
        digest: Digest,
    },
    /// Remove a blob link from a repository.
    UnlinkBlob {
        /// Repository name.
        repo: String,
        /// The blob.
        digest: Digest,
    },
    /// Appends an event to the history of the application whose versions are the tags of
    /// `repo`, naming the version `repo:version` points to when the change applies (after the
    /// earlier changes of the list): fails the whole list with [`Error::AppVersionNotFound`]
    /// when that tag does not exist. An add or import of the version already current (same
    /// index) records nothing. Raises the store to format 4 (see `STORE_FORMAT_VERSION`).
    AppEvent {
        /// The application's repository.
        repo: String,
        /// The version (a tag of `repo`).
        version: String,
        /// What happened; every action but [`AppAction::Drop`] makes the version current.
        action: AppAction,
        /// Who: an OS user, or the bundle an import came from.
        by: String,
    },
    /// Changes nothing, but fails the whole list with [`Error::BlobNotFound`] unless the blob
    /// is stored when the list applies. A caller that checked what a manifest references puts
    /// one before its `LinkManifest`, so GC cannot remove a child between check and link.
    RequireBlob {
        /// The blob.
        digest: Digest,
    },
    /// Changes nothing, but fails the whole list with [`Error::BlobNotFound`] unless `repo`
    /// links the digest when the list applies (as a manifest, or as a blob when `blob_ok`).
    /// The registry puts one per reference before a `LinkManifest`, so a concurrent delete
    /// cannot slip between its check and the link.
    RequireLink {
        /// Repository name.
        repo: String,
        /// The digest.
        digest: Digest,
        /// Whether a blob link is enough (a layer or config), or a manifest link is needed.
        blob_ok: bool,
    },
}

/// How a repository holds a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Linked as a blob (uploaded or mounted).
    pub blob: bool,
    /// Linked as a manifest.
    pub manifest: bool,
}

/// One change of a tag, from its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagChange {
    /// What the tag pointed to after the change; `None` when it was deleted.
    pub digest: Option<Digest>,
    /// Unix seconds.
    pub time: u64,
}

impl From<TagEvent> for TagChange {
    fn from(e: TagEvent) -> Self {
        TagChange {
            digest: e.digest,
            time: e.time,
        }
    }
}

impl Store {
    /// Applies changes in one transaction: all or nothing. Linked digests must be stored or
    /// staged;
    /// tags must point at manifests linked in their repository (possibly by an earlier change
    /// of the same list).
    pub fn apply_repo_changes(&self, changes: &[RepoChange]) -> Result<()> {
        self.check_writable()?;
        if changes
            .iter()
            .any(|c| matches!(c, RepoChange::MarkAbsent { .. }))
        {
            // Older airlocks would not know these children are absent on purpose.
            self.raise_format(crate::store::ABSENT_FORMAT_VERSION)?;
        }
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        if changes
            .iter()
            .any(|c| matches!(c, RepoChange::AppEvent { .. }))
        {
            self.raise_format(crate::store::APPS_FORMAT_VERSION)?;
        }
        let now = now();
        let mut tx = self.inner.index.write()?;
        apply_changes_in(&mut tx, changes, now)?;
        tx.commit()
    }

    /// Links a stored blob into a repository.
    pub fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.apply_repo_changes(&[RepoChange::LinkBlob {
            repo: repo.to_owned(),
            digest: digest.clone(),
        }])
    }

    /// How `repo` holds `digest`, if it does.
    pub fn link(&self, repo: &str, digest: &Digest) -> Result<Option<Link>> {
        Ok(self.inner.index.read()?.link(repo, digest)?.map(|k| Link {
            blob: k.contains(LinkKind::BLOB),
            manifest: k.contains(LinkKind::MANIFEST),
        }))
    }

    /// The manifest a tag points to.
    pub fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        self.inner.index.read()?.tag(repo, tag)
    }

    /// Tags of a repository with their manifests, sorted by tag.
    pub fn tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        self.inner.index.read()?.tags(repo)
    }

    /// Every change of a tag, oldest first (kept for the GC rollback window).
    pub fn tag_history(&self, repo: &str, tag: &str) -> Result<Vec<TagChange>> {
        Ok(self
            .inner
            .index
            .read()?
            .tag_history(repo, tag)?
            .into_iter()
            .map(|(_, e)| e.into())
            .collect())
    }

    /// Repository names, sorted.
    pub fn repositories(&self) -> Result<Vec<String>> {
        self.inner.index.read()?.repos()
    }

    /// Whether `repo` is one of [`Store::repositories`], by one lookup.
    pub fn has_repository(&self, repo: &str) -> Result<bool> {
        self.inner.index.read()?.has_repo(repo)
    }

    /// Digests a manifest was recorded as referencing.
    pub fn manifest_children(&self, digest: &Digest) -> Result<Vec<Digest>> {
        self.inner.index.read()?.edges(digest)
    }

    /// Children a manifest is linked without on purpose (see [`RepoChange::MarkAbsent`]).
    pub fn absent_children(&self, digest: &Digest) -> Result<Vec<Digest>> {
        self.inner.index.read()?.absent(digest)
    }

    /// The media type a manifest was pushed with.
    pub fn manifest_media_type(&self, digest: &Digest) -> Result<Option<String>> {
        self.inner.index.read()?.media_type(digest)
    }

    /// Referrers of `subject` in `repo` as (manifest digest, descriptor bytes), by digest.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<(Digest, Vec<u8>)>> {
        self.inner.index.read()?.referrers(repo, subject)
    }

    /// Saves an upload session's state (opaque to the store), so it survives a restart.
    pub fn put_upload(&self, id: &str, state: &[u8]) -> Result<()> {
        self.check_writable()?;
        let mut tx = self.inner.index.write()?;
        tx.put_upload(id, state)?;
        tx.commit()
    }

    /// An upload session's state.
    pub fn upload(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.inner.index.read()?.upload(id)
    }

    /// Every upload session as (id, state).
    pub fn uploads(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.index.read()?.uploads()
    }

    /// Forgets an upload session; returns whether it existed.
    pub fn remove_upload(&self, id: &str) -> Result<bool> {
        self.check_writable()?;
        let mut tx = self.inner.index.write()?;
        let had = tx.remove_upload(id)?;
        tx.commit()?;
        Ok(had)
    }
}

/// Applies `changes` in `tx` (see [`Store::apply_repo_changes`]): a staging commits its own
/// record and the push's link in one transaction.
pub(crate) fn apply_changes_in(
    tx: &mut WriteTx<'_>,
    changes: &[RepoChange],
    now: u64,
) -> Result<()> {
    for change in changes {
        match change {
            RepoChange::LinkBlob { repo, digest } => {
                check_repo(repo)?;
                if !tx.holds_blob(digest)? {
                    return Err(Error::BlobNotFound {
                        digest: digest.clone(),
                    });
                }
                tx.add_link(repo, digest, LinkKind::BLOB, now)?;
                tx.touch_blob(digest, now)?;
            }
            RepoChange::LinkManifest {
                repo,
                digest,
                children,
                subject,
                media_type,
            } => {
                check_repo(repo)?;
                if !tx.holds_blob(digest)? {
                    return Err(Error::BlobNotFound {
                        digest: digest.clone(),
                    });
                }
                tx.add_link(repo, digest, LinkKind::MANIFEST, now)?;
                if tx.edges(digest)?.is_empty() {
                    tx.put_edges(digest, children)?;
                }
                tx.clear_absent(digest)?;
                tx.put_media_type(digest, media_type)?;
                if let Some((subject, descriptor)) = subject {
                    tx.put_referrer(repo, subject, digest, descriptor)?;
                }
            }
            RepoChange::MarkAbsent { digest, children } => {
                let edges = tx.edges(digest)?;
                let mut absent = Vec::new();
                for c in children {
                    if edges.contains(c) && !tx.holds_blob(c)? && !absent.contains(c) {
                        absent.push(c.clone());
                    }
                }
                tx.put_absent(digest, &absent)?;
            }
            RepoChange::SetTag { repo, tag, digest } => {
                check_repo(repo)?;
                if tag.is_empty() {
                    return Err(Error::InvalidName {
                        what: "tag",
                        text: tag.clone(),
                        why: "must not be empty",
                    });
                }
                let linked = tx
                    .link(repo, digest)?
                    .is_some_and(|k| k.contains(LinkKind::MANIFEST));
                if !linked {
                    return Err(Error::BlobNotFound {
                        digest: digest.clone(),
                    });
                }
                if tx.tag(repo, tag)?.as_ref() != Some(digest) {
                    tx.set_tag(repo, tag, Some(digest), now)?;
                }
            }
            RepoChange::DeleteTag { repo, tag } => {
                if tx.tag(repo, tag)?.is_some() {
                    tx.set_tag(repo, tag, None, now)?;
                }
            }
            RepoChange::UnlinkManifest { repo, digest } => {
                for (tag, d) in tx.tags(repo)? {
                    if d == *digest {
                        tx.set_tag(repo, &tag, None, now)?;
                    }
                }
                tx.remove_link(repo, digest, LinkKind::MANIFEST)?;
                tx.remove_referrer_everywhere(repo, digest)?;
            }
            RepoChange::UnlinkBlob { repo, digest } => {
                tx.remove_link(repo, digest, LinkKind::BLOB)?;
            }
            RepoChange::RequireLink {
                repo,
                digest,
                blob_ok,
            } => {
                let linked = tx.link(repo, digest)?.is_some_and(|k| {
                    k.contains(LinkKind::MANIFEST) || (*blob_ok && k.contains(LinkKind::BLOB))
                });
                if !linked || !tx.holds_blob(digest)? {
                    return Err(Error::BlobNotFound {
                        digest: digest.clone(),
                    });
                }
            }
            RepoChange::AppEvent {
                repo,
                version,
                action,
                by,
            } => {
                check_repo(repo)?;
                record_event(tx, repo, version, *action, by, now)?;
            }
            RepoChange::RequireBlob { digest } => {
                if !tx.holds_blob(digest)? {
                    return Err(Error::BlobNotFound {
                        digest: digest.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_repo(repo: &str) -> Result<()> {
    if repo.is_empty() || repo.len() > 4096 {
        return Err(Error::InvalidName {
            what: "repository",
            text: repo.chars().take(100).collect(),
            why: "must be 1 to 4096 bytes",
        });
    }
    Ok(())
}
