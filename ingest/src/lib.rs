//! Bringing images into the store: `docker save` archives, OCI image layouts and archives,
//! upstream registries (over HTTP with token auth), and app files that list them. Every source
//! is first turned into [`ImagePlan`]s (manifests as exact bytes, the blobs they reach, where each
//! blob's bytes come from), checking everything that can be checked without reading layers:
//! hostile or broken input fails there, before the store is touched. Then the blobs the store
//! lacks are stored, several at once, each verified as it streams in; then each image is linked
//! and tagged in one transaction, so an error leaves no link and no tag moved and a re-run
//! skips the blobs already stored.
//!
//! It must not know the registry's server side or the CLI: no axum, no printing. Manifests,
//! names and references are `airlock_oci`'s, walked with its one walk; the store is reached only
//! by `commit` (and `app` for an application's index), and digests cross into the store's type
//! only through `digest`. Only `archive` reads tar files, only `http` speaks HTTP, only `auth`
//! knows credentials. Progress goes to a [`Progress`] the caller passes.
//!
//! # Overview
//! - [`Source`] (`docker-archive:`, `oci:`, `oci-archive:`, `docker://`) and [`AddOptions`];
//!   [`plan_source`] -> [`ImagePlan`]s, then [`store_and_commit`].
//! - [`add_app`]: an app file (`app.yaml`); [`read_app`] and [`app_images`] read a recorded
//!   application version back.
//! - [`ManifestFormat`] and [`Compression`] for docker archives, [`UpstreamOptions`] and
//!   [`Credentials`] for registries.
//! - [`Progress`] with its [`ImageReport`], [`AppReport`] and [`Summary`]; [`NoProgress`].
//!
//! ```
//! use airlock_ingest::{AddOptions, NoProgress, Source, Untagged, plan_source};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
//! std::fs::write(
//!     dir.path().join("index.json"),
//!     br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
//! )
//! .unwrap();
//! let source = Source::parse(&format!("oci:{}", dir.path().display()), None).unwrap();
//! // An empty layout names no image: refused before anything is stored.
//! let err = plan_source(&source, None, &AddOptions::default(), Untagged::Refuse, &NoProgress)
//!     .unwrap_err();
//! assert!(err.to_string().contains("names no image"), "{err}");
//! ```

pub use crate::{
    add::{AddOptions, Source, Untagged, plan_source, store_and_commit},
    app::{
        ANNOTATION_NAME, ANNOTATION_REF, ANNOTATION_VERSION, APP_ARTIFACT_TYPE, APP_REPO_PREFIX,
        AppEntry, add_app, app_images, read_app,
    },
    auth::Credentials,
    docker_archive::{Compression, ManifestFormat},
    error::{Error, Result},
    plan::{BlobSource, ImagePlan, ManifestNode},
    progress::{AppReport, Committed, ImageReport, NoProgress, Progress, Summary},
    upstream::UpstreamOptions,
};

mod add;
mod app;
mod archive;
mod auth;
mod commit;
mod digest;
mod docker_archive;
mod error;
mod http;
mod oci_layout;
mod plan;
mod progress;
mod upstream;
