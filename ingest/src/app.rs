//! `airlock add -f app.yaml`: one version of an application, the images and OCI artifacts
//! (Helm charts pushed as OCI, SBOMs, ...) that make it up.
//!
//! ```yaml
//! name: shop                 # becomes repository airlock/apps/shop
//! version: 1.4.2             # its tag
//! images:
//!   - docker://registry.example.com/shop/web:1.4.2
//!   - source: docker-archive:vendor/worker.tar     # relative to this file
//!     as: registry.example.com/shop/worker:1.4.2
//!   - source: docker://ghcr.io/example/charts/shop:1.4.2
//!     platform: linux/amd64
//! ```
//!
//! Adding it adds every image, then records the version as an OCI image index with
//! `artifactType` [`APP_ARTIFACT_TYPE`], the app's name and version as annotations, and one
//! entry per image (its root manifest, annotated with the image's reference), tagged
//! `<version>` in `airlock/apps/<name>`. Everything the images reach is linked into that
//! repository too, so the index is an ordinary, pullable index for bundles and diffs. The index
//! bytes depend only on the file's content and the images' digests: adding it again changes
//! nothing. A version added (or changed) becomes the application's current one, recorded in
//! its history with the user who added it (see `airlock apps`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use airlock_oci::{Descriptor, ImageRef, OCI_INDEX, Platform, RepoName, Tag, Target};
use airlock_store::{AppAction, Digest, RepoChange, Store};
use serde::{Deserialize, Serialize};

use crate::{
    AddOptions, ImagePlan, Source, Untagged,
    commit::{link_into, put_manifest},
    digest::to_store,
    error::{Context as _, Error, Result, err, fail},
    plan::ManifestNode,
    plan_source,
    progress::{AppReport, Committed, Progress},
    store_and_commit,
};

/// The `artifactType` of an application version's index.
pub const APP_ARTIFACT_TYPE: &str = "application/vnd.airlock.app.v1+json";
/// Annotation: the application's name.
pub const ANNOTATION_NAME: &str = "io.airlock.app.name";
/// Annotation: the application's version.
pub const ANNOTATION_VERSION: &str = "io.airlock.app.version";
/// Annotation of each entry: the image's reference (`repo:tag`, or `repo@digest`).
pub const ANNOTATION_REF: &str = "org.opencontainers.image.ref.name";
/// Repositories of application versions are `<prefix><name>`.
pub const APP_REPO_PREFIX: &str = "airlock/apps/";
/// Largest app file read.
const MAX_APP_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    name: String,
    version: String,
    images: Vec<AppImage>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AppImage {
    Source(String),
    Full(FullImage),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullImage {
    source: String,
    #[serde(rename = "as", default)]
    target: Option<String>,
    #[serde(default)]
    platform: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppIndex<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    manifests: Vec<Descriptor>,
    annotations: BTreeMap<&'a str, &'a str>,
}

/// Adds every image of the app file at `path`, then records the version.
pub fn add_app(
    store: &Store,
    path: &Path,
    opts: &AddOptions,
    progress: &dyn Progress,
) -> Result<()> {
    let text = read_app_file(path)?;
    let app: AppFile = serde_saphyr::from_str(&text).map_err(|e| app_error(path, e.to_string()))?;
    let repo: RepoName = format!("{APP_REPO_PREFIX}{}", app.name)
        .parse()
        .map_err(|e| app_error(path, format!("name {:?}: {e}", app.name)))?;
    let version: Tag = app
        .version
        .parse()
        .map_err(|e| app_error(path, format!("version {:?}: {e}", app.version)))?;
    if app.images.is_empty() {
        return Err(app_error(path, "images: the list is empty".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    // `as:` names a repository as `add --as` does: where a pull of that name reads.
    let held: BTreeSet<String> = store
        .repositories()
        .context(|| "listing the store's repositories".into())?
        .into_iter()
        .collect();
    let mut plans: Vec<ImagePlan> = Vec::new();
    for (i, image) in app.images.iter().enumerate() {
        let (source, target, platform) = match image {
            AppImage::Source(s) => (s.as_str(), None, None),
            AppImage::Full(f) => (
                f.source.as_str(),
                f.target.as_deref(),
                f.platform.as_deref(),
            ),
        };
        let what = format!("{}: images[{i}] ({source})", path.display());
        let source = Source::parse(source, Some(base)).context(|| what.clone())?;
        let target = target
            .map(|t| Target::place::<airlock_oci::Error>(t, |n| Ok(held.contains(n.as_str()))))
            .transpose()
            .context(|| what.clone())?;
        let mut opts = opts.clone();
        if let Some(p) = platform {
            opts.platforms = vec![p.parse::<Platform>().context(|| what.clone())?];
        }
        let planned = plan_source(&source, target.as_ref(), &opts, Untagged::Allow, progress)
            .context(|| what.clone())?;
        plans.extend(planned);
    }
    store_and_commit(store, &plans, opts, progress)?;
    let (outcome, node) = commit_app(store, &repo, &version, &app, &plans, &opts.user)?;
    progress.app(&AppReport {
        outcome,
        name: app.name.clone(),
        version,
        repo,
        digest: node.digest,
        images: node.parsed.manifests.len(),
    });
    Ok(())
}

fn app_error(path: &Path, what: String) -> Error {
    Error::App {
        path: path.to_owned(),
        what,
    }
}

fn read_app_file(path: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(path).context(|| format!("reading app file {}", path.display()))?;
    if meta.len() > MAX_APP_FILE_BYTES {
        fail!(
            Content,
            "app file {} is larger than {MAX_APP_FILE_BYTES} bytes",
            path.display()
        );
    }
    std::fs::read_to_string(path).context(|| format!("reading app file {}", path.display()))
}

/// Builds, stores, links and tags the app's index.
fn commit_app(
    store: &Store,
    repo: &RepoName,
    version: &Tag,
    app: &AppFile,
    plans: &[ImagePlan],
    user: &str,
) -> Result<(Committed, ManifestNode)> {
    let mut entries: Vec<Descriptor> = Vec::new();
    for plan in plans {
        let mut d = plan.root.clone();
        let name = match plan.tags.first() {
            Some(t) => format!("{}:{t}", plan.repo),
            None => format!("{}@{}", plan.repo, plan.root.digest),
        };
        d.annotations.insert(ANNOTATION_REF.to_owned(), name);
        if !entries.contains(&d) {
            entries.push(d);
        }
    }
    let index = AppIndex {
        schema_version: 2,
        media_type: OCI_INDEX,
        artifact_type: APP_ARTIFACT_TYPE,
        manifests: entries,
        annotations: BTreeMap::from([
            (ANNOTATION_NAME, app.name.as_str()),
            (ANNOTATION_VERSION, app.version.as_str()),
            ("org.opencontainers.image.title", app.name.as_str()),
            ("org.opencontainers.image.version", app.version.as_str()),
        ]),
    };
    let bytes = serde_json::to_vec(&index).context(|| "writing the app index".into())?;
    let node = ManifestNode::new(bytes, Some(OCI_INDEX), None)?;
    let current = store
        .tag(repo.as_str(), version.as_str())
        .context(|| format!("reading tag {repo}:{version}"))?;
    if current == Some(to_store(&node.digest)?) {
        return Ok((Committed::Present, node));
    }
    put_manifest(store, &node)?;
    let mut changes = Vec::new();
    for plan in plans {
        link_into(&mut changes, repo, &plan.manifests, &plan.blobs)?;
    }
    link_into(&mut changes, repo, std::slice::from_ref(&node), &[])?;
    changes.push(RepoChange::SetTag {
        repo: repo.to_string(),
        tag: version.to_string(),
        digest: to_store(&node.digest)?,
    });
    // The version is current from now on, with its images' tags moved by the changes above.
    changes.push(RepoChange::AppEvent {
        repo: repo.to_string(),
        version: version.to_string(),
        action: AppAction::Add,
        by: user.to_owned(),
    });
    store
        .apply_repo_changes(&changes)
        .context(|| format!("recording app {} {}", app.name, app.version))?;
    Ok((Committed::Added, node))
}

/// One image of a recorded application version.
#[derive(Clone, Debug)]
pub struct AppEntry {
    /// The image's reference as its entry is annotated (`repo:tag` or `repo@digest`).
    pub name: Option<ImageRef>,
    /// The root manifest the version recorded (its tag may have moved since).
    pub digest: Digest,
}

/// The images of the application version `r` names (recorded by `airlock add -f`), or `None`
/// when `r` names anything else or nothing.
pub fn read_app(store: &Store, r: &ImageRef) -> Result<Option<Vec<AppEntry>>> {
    let digest = match (&r.digest, &r.tag) {
        (Some(d), _) => Some(to_store(d)?),
        (None, Some(t)) => store
            .tag(r.repo.as_str(), t.as_str())
            .context(|| format!("reading tag {r}"))?,
        (None, None) => None,
    };
    let Some(digest) = digest else {
        return Ok(None);
    };
    let media_type = store
        .manifest_media_type(&digest)
        .context(|| format!("reading manifest {digest} of {r}"))?;
    if media_type.as_deref() != Some(OCI_INDEX) {
        return Ok(None);
    }
    let bytes = store
        .read_blob(&digest)
        .context(|| format!("reading manifest {digest} of {r}"))?;
    let index: serde_json::Value =
        serde_json::from_slice(&bytes).context(|| format!("reading index {digest} of {r}"))?;
    if index["artifactType"] != APP_ARTIFACT_TYPE {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (i, entry) in index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let what = || format!("manifests[{i}] of application {r}");
        let digest = entry["digest"]
            .as_str()
            .ok_or_else(|| err!(Content, "{}: no digest", what()))?
            .parse::<Digest>()
            .context(what)?;
        let name = entry["annotations"][ANNOTATION_REF]
            .as_str()
            .map(|n| {
                n.parse::<ImageRef>()
                    .context(|| format!("image {n:?} of application {r}"))
            })
            .transpose()?;
        out.push(AppEntry { name, digest });
    }
    Ok(Some(out))
}

/// The images of an application version by the references its index records, so their own
/// tags travel with it; nothing for any other reference.
pub fn app_images(store: &Store, r: &ImageRef) -> Result<Vec<ImageRef>> {
    let entries = read_app(store, r)?.unwrap_or_default();
    Ok(entries.into_iter().filter_map(|e| e.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_files_parse() {
        let app: AppFile = serde_saphyr::from_str(
            "name: shop\nversion: 1.4.2\nimages:\n  - docker://example.com/a:1\n  - source: oci:layout:v1\n    as: example.com/b:1\n    platform: linux/amd64\n",
        )
        .expect("parse");
        assert_eq!(app.images.len(), 2);
        assert!(
            matches!(&app.images[1], AppImage::Full(f) if f.target.as_deref() == Some("example.com/b:1"))
        );
        // Versions are strings even when YAML would read a number: 1.10 stays 1.10.
        let app: AppFile =
            serde_saphyr::from_str("name: shop\nversion: 1.10\nimages: []\n").expect("parse");
        assert_eq!(app.version, "1.10");
        let bad: Result<AppFile, _> =
            serde_saphyr::from_str("name: shop\nversion: 1\nimagez: []\n");
        assert!(bad.is_err());
    }
}
