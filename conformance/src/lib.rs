//! Checks that hold an HTTP registry to the OCI Distribution Specification v1.1, derived from the
//! spec's workflows (pull, push, content discovery, content management, referrers) and named
//! after its endpoint ids (`end_2_pull_blob`, `end_5_patch_chunks`, ...). Each check is
//! parameterised only by a base URL, makes its own content (random blobs, OCI and Docker
//! manifests built with serde_json) in repositories of its own, and reports what the registry
//! did wrong in a [`CheckFailure`]. The crate also builds random images ([`ImageBuilder`]) and
//! OCI layouts on disk ([`write_oci_layout`]) for the interop tests with real clients.
//!
//! It must not know any registry's internals: no airlock crate is a dependency (only the tests
//! boot airlock's server), checks speak HTTP/1.1 through [`Registry`], and a behaviour the
//! spec leaves optional is required only under [`Optional::Require`].
//!
//! # Overview
//!
//! - [`Conformance`]: one `pub async fn` per check, [`Conformance::run_all`] and [`CHECKS`].
//! - [`CheckFailure`]: which check failed and what the registry answered.
//! - [`Registry`] / [`Response`]: a small HTTP(S) client over hyper-util, with push helpers
//!   ([`Registry::push_blob`], [`Registry::push_image`]), a custom CA ([`Registry::with_ca`])
//!   and both ways of logging in ([`Registry::with_basic`], [`Registry::with_token_flow`]);
//!   [`Conformance::with_registry`] runs the checks through such a client.
//! - [`Blob`], [`Image`], [`ImageBuilder`], [`Algorithm`]: content made for a check.
//!
//! ```no_run
//! # async fn demo() {
//! use airlock_conformance::Conformance;
//!
//! let results = Conformance::new("http://127.0.0.1:5000").run_all().await;
//! for (name, result) in &results {
//!     match result {
//!         Ok(()) => println!("ok   {name}"),
//!         Err(failure) => println!("FAIL {failure}"),
//!     }
//! }
//! # }
//! ```

pub use crate::{
    check::{CHECKS, CheckFailure, Conformance, Optional},
    content::{
        Algorithm, Blob, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
        Format, Image, ImageBuilder, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER_GZIP,
        OCI_MANIFEST, host_platform, index_of, random_bytes, random_layer,
    },
    error::Error,
    http::{Registry, RequestBuilder, Response},
    layout::{read_oci_layout, write_oci_layout},
};

mod check;
mod checks;
mod content;
mod error;
mod http;
mod layout;
mod login;
