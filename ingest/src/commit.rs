//! Storing what the plans reach, then linking and tagging: blobs first (several at once,
//! skipping those already stored, so an interrupted add resumes where it stopped), then per
//! image one transaction that links every blob and manifest and moves the tags. A tag never
//! moves before everything its manifest reaches is stored.

use std::{
    collections::HashSet,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use airlock_oci::{Descriptor, RepoName};
use airlock_store::{Digest, PutOptions, RepoChange, Store};

use crate::{
    digest::to_store,
    error::{Context as _, Error, Result, err},
    plan::{BlobSource, ImagePlan, ManifestNode},
    progress::{Committed, Counting, ImageReport, Progress},
};

/// Stores every blob the plans reach that the store lacks, `jobs` at a time. Returns the
/// number of blobs stored and their bytes.
pub fn store_blobs(
    store: &Store,
    plans: &[ImagePlan],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(usize, u64)> {
    let mut seen = HashSet::new();
    let mut todo: Vec<(&Descriptor, &dyn BlobSource)> = Vec::new();
    for plan in plans {
        for blob in &plan.blobs {
            if !seen.insert(blob.digest.clone()) {
                continue;
            }
            let stored = store
                .has_blob(&to_store(&blob.digest)?)
                .context(|| format!("looking up blob {}", blob.digest))?;
            if stored {
                progress.blob_present(blob);
                continue;
            }
            todo.push((blob, plan.source.as_ref()));
        }
    }
    let total: u64 = todo.iter().map(|(d, _)| d.size).sum();
    let count = todo.len();
    progress.plan(count, total);
    // Workers pop from the end, largest first: the long transfers start early and the small
    // ones fill in around them.
    todo.sort_by_key(|(d, _)| d.size);
    let queue = Mutex::new(todo);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 16).min(count.max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some((blob, source)) = next else { break };
                    if let Err(e) = store_one(store, blob, source, progress) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    Ok((count, total))
}

fn store_one(
    store: &Store,
    blob: &Descriptor,
    source: &dyn BlobSource,
    progress: &dyn Progress,
) -> Result<()> {
    progress.blob_started(blob);
    let stored = (|| {
        let reader = source.open_blob(blob)?;
        let reader = Counting {
            inner: reader,
            blob,
            progress,
        };
        let opts = PutOptions {
            max_size: None,
            expected_size: Some(blob.size),
        };
        store
            .put_blob(&to_store(&blob.digest)?, reader, opts)
            .context(|| format!("blob {}", blob.digest))?;
        Ok::<(), Error>(())
    })();
    let result = stored.context(|| format!("storing blob from {}", source.describe(blob)));
    progress.blob_finished(blob, result.is_ok());
    result
}

/// Stores the plan's manifests and links everything into its repository in one transaction,
/// moving its tags last; or changes nothing when the tags already point at the root.
pub fn commit_image(store: &Store, plan: &ImagePlan) -> Result<Committed> {
    if is_present(store, plan)? {
        return Ok(Committed::Present);
    }
    for m in &plan.manifests {
        put_manifest(store, m)?;
    }
    let mut changes = Vec::new();
    link_into(&mut changes, &plan.repo, &plan.manifests, &plan.blobs)?;
    let root = to_store(&plan.root.digest)?;
    for tag in &plan.tags {
        changes.push(RepoChange::SetTag {
            repo: plan.repo.to_string(),
            tag: tag.to_string(),
            digest: root.clone(),
        });
    }
    for (tag, digest) in &plan.extra_tags {
        changes.push(RepoChange::SetTag {
            repo: plan.repo.to_string(),
            tag: tag.to_string(),
            digest: to_store(digest)?,
        });
    }
    store
        .apply_repo_changes(&changes)
        .context(|| format!("linking {} into {}", plan.label, plan.repo))?;
    Ok(Committed::Added)
}

/// Whether the plan's tags all point at its root, which is linked in its repository with
/// every manifest of the plan (an index added with `--platform` earlier lacks the others).
fn is_present(store: &Store, plan: &ImagePlan) -> Result<bool> {
    for m in &plan.manifests {
        let d = to_store(&m.digest)?;
        let linked = store
            .link(plan.repo.as_str(), &d)
            .context(|| format!("looking up {d} in {}", plan.repo))?
            .is_some_and(|l| l.manifest);
        if !linked {
            return Ok(false);
        }
    }
    let root = to_store(&plan.root.digest)?;
    let linked = store
        .link(plan.repo.as_str(), &root)
        .context(|| format!("looking up {} in {}", root, plan.repo))?
        .is_some_and(|l| l.manifest);
    if !linked {
        return Ok(false);
    }
    for tag in &plan.tags {
        let current = store
            .tag(plan.repo.as_str(), tag.as_str())
            .context(|| format!("reading tag {}:{tag}", plan.repo))?;
        if current.as_ref() != Some(&root) {
            return Ok(false);
        }
    }
    for (tag, digest) in &plan.extra_tags {
        let current = store
            .tag(plan.repo.as_str(), tag.as_str())
            .context(|| format!("reading tag {}:{tag}", plan.repo))?;
        if current != Some(to_store(digest)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stores a manifest's bytes unless the store has them.
pub fn put_manifest(store: &Store, m: &ManifestNode) -> Result<()> {
    let digest = to_store(&m.digest)?;
    let stored = store
        .has_blob(&digest)
        .context(|| format!("looking up manifest {digest}"))?;
    if stored {
        return Ok(());
    }
    let opts = PutOptions {
        max_size: None,
        expected_size: Some(m.bytes.len() as u64),
    };
    store
        .put_blob(&digest, &m.bytes[..], opts)
        .context(|| format!("storing manifest {}", m.digest))?;
    Ok(())
}

/// The changes that link `blobs` and `manifests` (children first) into `repo`, each manifest
/// with what it references and, for a referrer, its subject.
pub fn link_into(
    changes: &mut Vec<RepoChange>,
    repo: &RepoName,
    manifests: &[ManifestNode],
    blobs: &[Descriptor],
) -> Result<()> {
    for b in blobs {
        changes.push(RepoChange::LinkBlob {
            repo: repo.to_string(),
            digest: to_store(&b.digest)?,
        });
    }
    for m in manifests {
        let p = &m.parsed;
        let children = p
            .children()
            .iter()
            .map(to_store)
            .collect::<Result<Vec<Digest>>>()?;
        let subject = match &p.subject {
            Some(s) => {
                let entry = p.referrer_descriptor(m.digest.clone(), m.bytes.len() as u64);
                let entry = serde_json::to_vec(&entry).map_err(|e| err!(Content, "{e}"))?;
                Some((to_store(&s.digest)?, entry))
            }
            None => None,
        };
        let digest = to_store(&m.digest)?;
        changes.push(RepoChange::LinkManifest {
            repo: repo.to_string(),
            digest: digest.clone(),
            children,
            subject,
            media_type: p.media_type.as_str().to_owned(),
        });
        // Platforms left out (`--platform`) and non-distributable layers are not stored.
        let absent = m
            .absent
            .iter()
            .chain(
                p.blobs()
                    .filter(|b| b.is_non_distributable())
                    .map(|b| &b.digest),
            )
            .map(to_store)
            .collect::<Result<Vec<Digest>>>()?;
        if !absent.is_empty() {
            changes.push(RepoChange::MarkAbsent {
                digest,
                children: absent,
            });
        }
    }
    Ok(())
}

/// Reports an image's result.
pub fn report(progress: &dyn Progress, plan: &ImagePlan, how: Committed) {
    progress.image(&ImageReport {
        outcome: how,
        label: plan.label.clone(),
        repo: plan.repo.clone(),
        tags: plan.tags.clone(),
        root: plan.root.clone(),
        manifests: plan.manifests.len(),
        blobs: plan.blobs.len(),
    });
}
