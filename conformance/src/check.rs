//! The table of checks: one `pub async fn` per spec endpoint or workflow on [`Conformance`],
//! named after the spec's endpoint ids, and the harness that names failures.

use std::fmt;

use crate::{checks, content::random_bytes, error::Error, http::Registry};

/// Whether behaviour the spec leaves to the registry (MAY/SHOULD: single-POST uploads, mounts,
/// Range, deletes, tag parameters, referrers filtering, rejecting manifests with unknown blobs,
/// 4 MB manifests, 400 for malformed digests, JSON error bodies) is required, or its documented
/// fallback accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optional {
    /// The registry claims the whole of v1.1 (airlock does): every optional feature must work and
    /// every 4xx carries the spec's error code.
    Require,
    /// Accept the spec's fallbacks (202 instead of 201, 405 for deletes, a full body for Range,
    /// a 4xx body that is not JSON).
    Allow,
}

/// The conformance checks against one registry.
#[derive(Clone, Debug)]
pub struct Conformance {
    pub(crate) registry: Registry,
    prefix: String,
    pub(crate) optional: Optional,
}

/// A failed check: its name and what the registry did instead of what the spec requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    pub check: &'static str,
    pub what: String,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.what)
    }
}

impl std::error::Error for CheckFailure {}

impl Conformance {
    /// Checks for the registry at `base` (`http://host:port`), requiring every optional feature,
    /// in repositories under `conformance/`.
    pub fn new(base: &str) -> Conformance {
        Conformance {
            registry: Registry::new(base),
            prefix: "conformance".to_owned(),
            optional: Optional::Require,
        }
    }

    /// Runs the checks through `registry` (a client with a CA or credentials), keeping its base.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Uses repositories under `prefix` (a valid repository name).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Sets whether optional features are required.
    pub fn with_optional(mut self, optional: Optional) -> Self {
        self.optional = optional;
        self
    }

    /// The client the checks use, for pushing content of one's own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A repository name no other check or run uses: `<prefix>/<label>-<random>`.
    pub(crate) fn repo(&self, label: &str) -> String {
        format!("{}/{label}-{}", self.prefix, hex::encode(random_bytes(4)))
    }

    /// A tag no other check or run uses.
    pub(crate) fn tag(&self, label: &str) -> String {
        format!("{label}-{}", hex::encode(random_bytes(4)))
    }

    /// Runs every check in [`CHECKS`] order and returns each result by name.
    pub async fn run_all(&self) -> Vec<(&'static str, Result<(), CheckFailure>)> {
        let mut results = Vec::with_capacity(CHECKS.len());
        for name in CHECKS {
            if let Some(result) = self.run_check(name).await {
                results.push((*name, result));
            }
        }
        results
    }
}

/// Defines each check as a method that labels its failure, plus [`CHECKS`] and `run_check`.
macro_rules! checks {
    ($( $(#[$doc:meta])* $name:ident => $body:path; )*) => {
        impl Conformance {
            $(
                $(#[$doc])*
                pub async fn $name(&self) -> Result<(), CheckFailure> {
                    let result: Result<(), Error> = $body(self).await;
                    result.map_err(|e| CheckFailure { check: stringify!($name), what: e.to_string() })
                }
            )*

            /// Runs the check called `name`; `None` when there is none.
            pub async fn run_check(&self, name: &str) -> Option<Result<(), CheckFailure>> {
                match name {
                    $( stringify!($name) => Some(self.$name().await), )*
                    _ => None,
                }
            }
        }

        /// The name of every check, in the order [`Conformance::run_all`] runs them.
        pub const CHECKS: &[&str] = &[$( stringify!($name) ),*];
    };
}

checks! {
    /// end-1: `GET /v2/` answers 200.
    end_1_base => checks::pull::base;
    /// end-2: GET and HEAD of a blob: 200, exact bytes, `Docker-Content-Digest`,
    /// `Content-Length`; 404 for a blob never pushed.
    end_2_pull_blob => checks::pull::pull_blob;
    /// end-2: Range GETs answer 206 with `Content-Range`, or 416 when unsatisfiable.
    end_2_range_get => checks::pull::range_get;
    /// end-2: the empty blob and `{}` push and pull like any other.
    end_2_empty_blobs => checks::pull::empty_blobs;
    /// end-3: GET and HEAD of a manifest by tag and by digest: exact bytes, its media type,
    /// `Docker-Content-Digest`; 404 for unknown ones.
    end_3_pull_manifest => checks::pull::pull_manifest;
    /// end-3: Docker schema 2 manifests and manifest lists come back with their own media types
    /// and exact bytes.
    end_3_docker_media_types => checks::pull::docker_media_types;
    /// end-4a: POST opens distinct upload sessions with 202 and a `Location`.
    end_4a_post_upload => checks::push::post_upload;
    /// end-4b: a single POST with `?digest=` and the body creates the blob (201).
    end_4b_monolithic_post => checks::push::monolithic_post;
    /// end-4c: a sha512 blob pushed with `digest-algorithm=sha512` is served under its digest.
    end_4c_sha512_blob => checks::push::sha512_blob;
    /// end-5: PATCH chunks with `Content-Range` (202, `Range: 0-<end>`), 416 for out-of-order
    /// chunks, and the upload survives them.
    end_5_patch_chunks => checks::push::patch_chunks;
    /// end-6: the closing PUT, with the whole body, with a final chunk, and 416 for an
    /// out-of-order final chunk; the blob `Location` is pullable.
    end_6_put_close => checks::push::put_close;
    /// end-7: manifests pushed by tag and by digest (201, `Location`, digest), stored as exact
    /// bytes, indexes and image manifests without layers, tags moved.
    end_7_put_manifest => checks::manifests::put_manifest;
    /// end-7: a manifest of about 4 MB, which the spec says registries should accept.
    end_7_large_manifest => checks::manifests::large_manifest;
    /// end-7b: `PUT /manifests/<digest>?tag=a&tag=b` creates the tags and names them in `OCI-Tag`.
    end_7b_put_manifest_tags => checks::manifests::put_manifest_tags;
    /// end-8a: the tags list is every tag, sorted.
    end_8a_tags_list => checks::discovery::tags_list;
    /// end-8b: `n` and `last` page the tags list, with `Link: <...>; rel="next"`.
    end_8b_tags_pagination => checks::discovery::tags_pagination;
    /// end-9: deleting a tag leaves the manifest; deleting a manifest removes it and its tags,
    /// from the tags list too.
    end_9_delete_manifest => checks::management::delete_manifest;
    /// end-10: deleting a blob makes it 404.
    end_10_delete_blob => checks::management::delete_blob;
    /// end-11: mounting a blob from another repository (201), and 202 when it does not exist.
    end_11_mount => checks::push::mount;
    /// end-12a: the referrers list, with `OCI-Subject` on push, artifactType from the manifest
    /// or its config, annotations, subjects pushed before their referrers, and empty lists.
    end_12a_referrers => checks::discovery::referrers;
    /// end-12b: `?artifactType=` filters the referrers list and says so in `OCI-Filters-Applied`.
    end_12b_referrers_filter => checks::discovery::referrers_filter;
    /// end-13: GET of an upload session answers 204 with `Location` and `Range`.
    end_13_upload_status => checks::push::upload_status;
    /// end-14: DELETE cancels an upload session; it is then unknown (BLOB_UPLOAD_UNKNOWN).
    end_14_cancel_upload => checks::push::cancel_upload;
    /// code-1: a blob never pushed is 404 BLOB_UNKNOWN.
    error_blob_unknown => checks::errors::blob_unknown;
    /// code-4: a blob or manifest whose content does not match its digest is 400 DIGEST_INVALID,
    /// and nothing is stored.
    error_digest_invalid => checks::errors::digest_invalid;
    /// code-5: a manifest naming a blob the repository lacks is MANIFEST_BLOB_UNKNOWN.
    error_manifest_blob_unknown => checks::errors::manifest_blob_unknown;
    /// code-6: a manifest that is not a manifest is MANIFEST_INVALID.
    error_manifest_invalid => checks::errors::manifest_invalid;
    /// code-7: a manifest never pushed is 404 MANIFEST_UNKNOWN, by tag and by digest.
    error_manifest_unknown => checks::errors::manifest_unknown;
    /// code-8: repository names outside the spec's grammar are NAME_INVALID.
    error_name_invalid => checks::errors::name_invalid;
}
