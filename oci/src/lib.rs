//! OCI as airlock reads it: repository names, tags and registry hosts, references in their
//! three forms (a tag or digest, `REPO:TAG@DIGEST`, and docker's normalized `nginx:1.27`), digests
//! as OCI spells them, manifest media types, manifests and indexes (OCI and Docker schema 2), and
//! the one walk over a manifest graph, with one depth limit.
//!
//! It must not know HTTP or the store: it parses text and bytes into validated types and says
//! precisely what is wrong with them in one [`Error`], which the registry maps to the spec's
//! error codes. Manifests are kept byte for byte by the callers; [`parse_manifest`] only reads
//! fields. Digests are parsed here but hashed by the store (`airlock_store::Digest` applies the
//! same rules, so a valid [`Digest`]'s text always parses there). Only `reference` splits
//! reference text, and the docker naming rule is [`normalize_docker_reference`] with
//! [`RepoName::in_namespace`]. Which stored repository a name asked for without a registry
//! means (`acme/gateway` for `docker.io/acme/gateway`) is one rule, [`RepoQuery`], which every
//! command and the registry apply; the store is asked through a closure.
//!
//! # Overview
//! - [`RepoName`], [`Tag`], [`Namespace`]: validated names; [`RepoName::in_namespace`] is the
//!   rule for the repository of an image from a registry host.
//! - [`Reference`] (a tag or digest), [`ImageRef`] (`REPO[:TAG][@DIGEST]`), [`Target`]
//!   (`REPO[:TAG]`), [`DockerRef`] from [`normalize_docker_reference`].
//! - [`RepoQuery`]: a name as asked for, resolved to a stored repository
//!   ([`RepoQuery::resolve`], [`RepoQuery::place`], [`ImageRef::resolve`]); [`direct_name`]
//!   is the shortest name that reads a stored repository.
//! - [`Digest`] and [`Algorithm`]: sha256 and sha512 digests.
//! - [`ManifestMediaType`] and the media type constants.
//! - [`parse_manifest`] -> [`ParsedManifest`] of [`Descriptor`]s, each with an optional
//!   [`Platform`].
//! - [`choose_platforms`] -> [`PlatformChoice`]: which entries of a multi-platform index
//!   travel when only some platforms are wanted (`--platform`).
//! - [`Walk`] over a [`ManifestGraph`], at most [`MAX_WALK_DEPTH`] deep.
//! - [`Error`]: every failure, naming the text or field at fault.
//!
//! ```
//! use airlock_oci::{ImageRef, ManifestMediaType, RepoName, normalize_docker_reference, parse_manifest};
//!
//! let image = normalize_docker_reference("nginx:1.27")?;
//! assert_eq!(image.repository().as_str(), "docker.io/library/nginx");
//! assert_eq!(image.api_host(), "registry-1.docker.io");
//!
//! let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
//! let index = parse_manifest(None, body)?;
//! assert_eq!(index.media_type, ManifestMediaType::OciIndex);
//! assert!("Library/nginx".parse::<RepoName>().is_err());
//!
//! // A store holding the added image: a pull of `acme/gateway` reads it.
//! let stored = |name: &RepoName| Ok::<_, airlock_oci::Error>(name.as_str() == "docker.io/acme/gateway");
//! let image = ImageRef::resolve("acme/gateway:1.0.0", stored)?;
//! assert_eq!(image.to_string(), "docker.io/acme/gateway:1.0.0");
//! # Ok::<(), airlock_oci::Error>(())
//! ```

pub use crate::{
    digest::{Algorithm, Digest},
    error::Error,
    manifest::{Descriptor, MAX_MANIFEST_BYTES, ParsedManifest, parse_manifest},
    media_type::{
        DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ManifestMediaType, OCI_INDEX, OCI_MANIFEST,
    },
    name::{MAX_NAME_BYTES, MAX_TAG_BYTES, Namespace, RepoName, Tag},
    platform::{Platform, PlatformChoice, choose_platforms, is_image_config, platform_list},
    reference::{DOCKER_HUB, DockerRef, ImageRef, Reference, Target, normalize_docker_reference},
    resolve::{RepoQuery, direct_name},
    walk::{MAX_WALK_DEPTH, ManifestGraph, Walk},
};

mod digest;
mod error;
mod manifest;
mod media_type;
mod name;
mod platform;
mod reference;
mod resolve;
mod walk;
