//! One `airlock add`: what a SOURCE argument names, the options, and the two phases every source
//! goes through: plan (everything checked that can be checked without reading layers), then
//! store the blobs and commit each image.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use airlock_oci::{Platform, Target};
use airlock_store::Store;

use crate::{
    archive, commit,
    docker_archive::{self, Compression, ManifestFormat},
    error::{Context as _, Result, fail},
    oci_layout,
    plan::ImagePlan,
    progress::{Committed, Progress, Summary},
    upstream::{self, UpstreamOptions},
};

/// What `airlock add` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `docker-archive:FILE`.
    DockerArchive(PathBuf),
    /// `oci:DIR[:REF]`.
    OciDir {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker://HOST/REPO:TAG` or `@DIGEST`.
    Registry(String),
}

impl Source {
    /// Parses a SOURCE argument; relative paths are taken from `base` (an app file's directory)
    /// when given.
    pub fn parse(text: &str, base: Option<&Path>) -> Result<Source> {
        let path = |p: &str| match base {
            Some(b) => b.join(p),
            None => PathBuf::from(p),
        };
        // `PATH:REF`, unless the whole text is an existing path (paths may contain ':').
        let with_ref = |rest: &str| -> (PathBuf, Option<String>) {
            if path(rest).exists() {
                return (path(rest), None);
            }
            match rest.rsplit_once(':') {
                Some((p, r)) if !p.is_empty() && !r.is_empty() && !r.contains('/') => {
                    (path(p), Some(r.to_owned()))
                }
                _ => (path(rest), None),
            }
        };
        if let Some(rest) = text.strip_prefix("docker-archive:") {
            return Ok(Source::DockerArchive(path(rest)));
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (file, reference) = with_ref(rest);
            return Ok(Source::OciArchive { file, reference });
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, reference) = with_ref(rest);
            return Ok(Source::OciDir { dir, reference });
        }
        if let Some(rest) = text.strip_prefix("docker://") {
            return Ok(Source::Registry(rest.to_owned()));
        }
        fail!(
            Usage,
            "unknown source {text:?}: expected docker-archive:FILE, oci:DIR[:REF], oci-archive:FILE[:REF] or docker://HOST/REPO:TAG"
        )
    }
}

/// Settings of one `airlock add`.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// The manifest flavour made for docker-archive images.
    pub format: ManifestFormat,
    /// How docker-archive layers are compressed.
    pub compression: Compression,
    /// How to reach upstream registries.
    pub upstream: UpstreamOptions,
    /// Only these platforms of multi-platform indexes (`--platform`; all when empty): the
    /// index is kept byte for byte, the other platforms' manifests are left out.
    pub platforms: Vec<Platform>,
    /// Blobs stored at once.
    pub jobs: usize,
    /// Who adds: recorded in an application's history (`add -f app.yaml`).
    pub user: String,
}

impl Default for AddOptions {
    /// OCI manifests, layers as they are, HTTPS, four blobs at once (the CLI's defaults).
    fn default() -> Self {
        AddOptions {
            format: ManifestFormat::Oci,
            compression: Compression::None,
            upstream: UpstreamOptions::default(),
            platforms: Vec::new(),
            jobs: 4,
            user: String::new(),
        }
    }
}

/// Whether an image pulled by digest alone may be planned without a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untagged {
    /// Refuse it: untagged content is garbage-collected.
    Refuse,
    /// Allow it: something else (an app's index) will reach it.
    Allow,
}

/// The plans for one source.
pub fn plan_source(
    source: &Source,
    target: Option<&Target>,
    opts: &AddOptions,
    untagged: Untagged,
    progress: &dyn Progress,
) -> Result<Vec<ImagePlan>> {
    match source {
        Source::DockerArchive(file) => {
            let label = format!("docker-archive:{}", file.display());
            docker_archive::plan(
                file,
                &label,
                opts.format,
                opts.compression,
                target,
                &opts.platforms,
                progress,
            )
        }
        Source::OciDir { dir, reference } => {
            let label = format!("oci:{}", dir.display());
            let fs = Arc::new(archive::DirFs::new(dir).context(|| label.clone())?);
            oci_layout::plan(
                fs,
                &label,
                reference.as_deref(),
                target,
                &opts.platforms,
                progress,
            )
        }
        Source::OciArchive { file, reference } => {
            let label = format!("oci-archive:{}", file.display());
            let fs = Arc::new(archive::TarIndex::scan(file)?);
            oci_layout::plan(
                fs,
                &label,
                reference.as_deref(),
                target,
                &opts.platforms,
                progress,
            )
        }
        Source::Registry(spec) => upstream::plan(
            spec,
            target,
            &opts.upstream,
            &opts.platforms,
            untagged,
            progress,
        ),
    }
}

/// Stores what `plans` reach and commits each image; reports each result.
pub fn store_and_commit(
    store: &Store,
    plans: &[ImagePlan],
    opts: &AddOptions,
    progress: &dyn Progress,
) -> Result<Vec<Committed>> {
    let stored = commit::store_blobs(store, plans, opts.jobs, progress);
    progress.blobs_done(stored.as_ref().ok().copied());
    let (blobs, bytes) = stored?;
    let mut results = Vec::new();
    for plan in plans {
        let how = commit::commit_image(store, plan)?;
        commit::report(progress, plan, how);
        results.push(how);
    }
    progress.done(&Summary {
        images: plans.len(),
        added: results.iter().filter(|c| **c == Committed::Added).count(),
        blobs_stored: blobs,
        bytes_stored: bytes,
    });
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("docker-archive:a/b.tar", None).expect("archive"),
            Source::DockerArchive("a/b.tar".into())
        );
        assert_eq!(
            Source::parse("oci:/nonexistent/layout:v1", None).expect("oci"),
            Source::OciDir {
                dir: "/nonexistent/layout".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            Source::parse("oci-archive:x.tar", Some(Path::new("/base"))).expect("oci-archive"),
            Source::OciArchive {
                file: "/base/x.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse("docker://nginx:1.27", None).expect("docker"),
            Source::Registry("nginx:1.27".into())
        );
        assert!(Source::parse("nginx:1.27", None).is_err());
    }
}
