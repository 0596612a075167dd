//! `oci:DIR[:REF]` and `oci-archive:FILE[:REF]`: OCI image layouts (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), every image named in `index.json` or the one named REF.
//! Manifests and indexes are kept byte for byte (multi-platform images whole, nested indexes
//! followed; unnamed entries of `index.json` whose `subject` is a chosen image come along as
//! its referrers; with `--platform`, only the chosen platforms' manifests of an index, which
//! stays as it is); every blob is checked to exist with its descriptor's size before anything
//! is stored.

use std::{collections::BTreeMap, sync::Arc};

use airlock_oci::{
    Descriptor, Digest, MAX_MANIFEST_BYTES, OCI_INDEX, Platform, RepoName, Tag, Target,
    normalize_docker_reference, parse_manifest,
};

use crate::{
    archive::SourceFs,
    error::{Context as _, Result, err, fail},
    plan::{BlobSource, ImagePlan, ManifestSource, Walked, fetch_node, finish_platforms},
    progress::Progress,
};

/// The annotation naming an image in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full name containerd (and `docker save` with the containerd image store) adds beside it.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Where a blob lives in a layout.
pub fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}

/// A layout's blobs, as manifests and as leaf blobs.
struct LayoutBlobs {
    fs: Arc<dyn SourceFs>,
}

impl ManifestSource for LayoutBlobs {
    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let name = blob_name(&d.digest);
        self.fs
            .read_small(&name, MAX_MANIFEST_BYTES)?
            .ok_or_else(|| {
                err!(
                    Content,
                    "missing blob: {} (manifest {})",
                    self.fs.describe(&name),
                    d.digest
                )
            })
    }
}

impl BlobSource for LayoutBlobs {
    fn open_blob(&self, blob: &Descriptor) -> Result<Box<dyn std::io::Read + Send + '_>> {
        let name = blob_name(&blob.digest);
        match self.fs.open(&name)? {
            Some((r, _)) => Ok(r),
            None => fail!(Content, "missing blob: {}", self.fs.describe(&name)),
        }
    }

    fn describe(&self, blob: &Descriptor) -> String {
        self.fs.describe(&blob_name(&blob.digest))
    }
}

/// Plans every image of the layout in `fs` (or the one named `reference`), `label` naming the
/// source in messages.
pub fn plan(
    fs: Arc<dyn SourceFs>,
    label: &str,
    reference: Option<&str>,
    target: Option<&Target>,
    platforms: &[Platform],
    progress: &dyn Progress,
) -> Result<Vec<ImagePlan>> {
    if fs.read_small("oci-layout", 64 * 1024)?.is_none() {
        fail!(
            Content,
            "{label} is not an OCI image layout: it has no oci-layout file"
        );
    }
    let index_bytes = fs
        .read_small("index.json", MAX_MANIFEST_BYTES)?
        .ok_or_else(|| {
            err!(
                Content,
                "{label} is not an OCI image layout: it has no index.json"
            )
        })?;
    let index = parse_manifest(Some(OCI_INDEX), &index_bytes)
        .map_err(|e| err!(Content, "{}: {e}", fs.describe("index.json")))?;
    // The full name when containerd wrote one, else the layout's name (often a tag alone).
    let named = |d: &Descriptor| {
        d.annotations
            .get(CONTAINERD_NAME)
            .or_else(|| d.annotations.get(REF_NAME))
            .cloned()
    };
    let ref_name = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    let selected: Vec<(Option<String>, &Descriptor)> = match reference {
        Some(r) => {
            let found: Vec<_> = index
                .manifests
                .iter()
                .filter(|d| named(d).as_deref() == Some(r) || ref_name(d).as_deref() == Some(r))
                .map(|d| (named(d), d))
                .collect();
            if found.is_empty() {
                let names: Vec<String> = index.manifests.iter().filter_map(named).collect();
                fail!(
                    Content,
                    "{label}: no image named {r:?} in index.json (names: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
            }
            found
        }
        None if index.manifests.len() == 1 && target.is_some() => {
            vec![(named(&index.manifests[0]), &index.manifests[0])]
        }
        None => {
            let found: Vec<_> = index
                .manifests
                .iter()
                .filter(|d| named(d).is_some())
                .map(|d| (named(d), d))
                .collect();
            if found.is_empty() {
                fail!(
                    Content,
                    "{label}: index.json names no image ({REF_NAME}); name one with --as REPO:TAG"
                );
            }
            found
        }
    };
    if selected.len() > 1 && target.is_some_and(|t| t.tag.is_some()) {
        fail!(
            Content,
            "{label} holds {} images but --as names one tag: pick one with {label}:REF, or give --as REPO alone to keep each image's tag",
            selected.len()
        );
    }
    let blobs = Arc::new(LayoutBlobs { fs: fs.clone() });
    // One plan per (repository, root): several names of one image in one repository are tags.
    let mut plans: BTreeMap<(RepoName, Digest), ImagePlan> = BTreeMap::new();
    let chosen: Vec<Digest> = selected.iter().map(|(_, d)| d.digest.clone()).collect();
    let mut checks = Vec::new();
    for (name, root) in selected {
        let (repo, tag) = destination(label, name.as_deref(), target)?;
        let key = (repo.clone(), root.digest.clone());
        if let Some(p) = plans.get_mut(&key) {
            if !p.tags.contains(&tag) {
                p.tags.push(tag);
            }
            continue;
        }
        let mut walked = Walked::with_platforms(platforms);
        let node = walked
            .walk(blobs.as_ref(), root)
            .context(|| format!("{label}: image {}", name.as_deref().unwrap_or("(unnamed)")))?;
        check_blobs(fs.as_ref(), &walked.blobs)?;
        let plan = ImagePlan {
            label: format!("{label} {}", name.as_deref().unwrap_or(""))
                .trim_end()
                .to_owned(),
            repo,
            tags: vec![tag],
            root: node.descriptor(),
            manifests: std::mem::take(&mut walked.manifests),
            extra_tags: Vec::new(),
            blobs: std::mem::take(&mut walked.blobs),
            source: blobs.clone(),
        };
        checks.push(walked.check_platforms(&plan)?);
        plans.insert(key, plan);
    }
    finish_platforms(label, platforms, checks, progress)?;
    let mut plans: Vec<ImagePlan> = plans.into_values().collect();
    let others = index
        .manifests
        .iter()
        .filter(|d| !chosen.contains(&d.digest) && named(d).is_none());
    for d in others {
        add_referrer(fs.as_ref(), &blobs, &mut plans, d)
            .context(|| format!("{label}: index.json entry {}", d.digest))?;
    }
    Ok(plans)
}

/// An unnamed entry of `index.json` that was not chosen: a referrer (an SBOM, a signature) of a chosen
/// image goes with it, as in a registry; anything else is left out.
fn add_referrer(
    fs: &dyn SourceFs,
    blobs: &LayoutBlobs,
    plans: &mut [ImagePlan],
    entry: &Descriptor,
) -> Result<()> {
    let node = fetch_node(blobs, entry)?;
    let Some(subject) = &node.parsed.subject else {
        return Ok(());
    };
    for plan in plans.iter_mut() {
        if !plan.manifests.iter().any(|m| m.digest == subject.digest) {
            continue;
        }
        let mut walked = Walked::default();
        walked.walk(blobs, entry)?;
        check_blobs(fs, &walked.blobs)?;
        for m in walked.manifests {
            if !plan.manifests.iter().any(|p| p.digest == m.digest) {
                plan.manifests.push(m);
            }
        }
        for b in walked.blobs {
            if !plan.blobs.iter().any(|p| p.digest == b.digest) {
                plan.blobs.push(b);
            }
        }
    }
    Ok(())
}

/// The repository and tag an image named `name` goes to.
fn destination(
    label: &str,
    name: Option<&str>,
    target: Option<&Target>,
) -> Result<(RepoName, Tag)> {
    let full = name
        .filter(|n| n.contains('/') || n.contains(':'))
        .map(normalize_docker_reference)
        .transpose()
        .context(|| format!("{label}: image name {:?}", name.unwrap_or_default()))?;
    let own_tag = match (&full, name) {
        (Some(r), _) => Some(r.tag.as_ref().map_or("latest", Tag::as_str).to_owned()),
        (None, Some(n)) => Some(n.to_owned()),
        (None, None) => None,
    };
    let tag = |text: String| {
        text.parse::<Tag>()
            .map_err(|e| err!(Content, "{label}: {e}"))
    };
    if let Some(t) = target {
        let tag = match &t.tag {
            Some(given) => given.clone(),
            None => tag(own_tag.ok_or_else(|| {
                err!(
                    Content,
                    "{label}: the image has no name: give --as REPO:TAG"
                )
            })?)?,
        };
        return Ok((t.repo.clone(), tag));
    }
    match (full, own_tag) {
        (Some(r), Some(own)) => Ok((r.repository().clone(), tag(own)?)),
        _ => fail!(
            Content,
            "{label}: image {:?} is named by a tag only; say which repository it goes to with --as REPO[:TAG]",
            name.unwrap_or_default()
        ),
    }
}

/// Every blob must be in the layout with its descriptor's size, checked before any is stored.
fn check_blobs(fs: &dyn SourceFs, blobs: &[Descriptor]) -> Result<()> {
    for b in blobs {
        let name = blob_name(&b.digest);
        match fs.open(&name)? {
            None => fail!(
                Content,
                "missing blob: {} ({})",
                fs.describe(&name),
                b.media_type
            ),
            Some((_, size)) if size != b.size => fail!(
                Content,
                "{}: {size} bytes, its descriptor says {}",
                fs.describe(&name),
                b.size
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
