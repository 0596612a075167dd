//! References to manifests, in the three forms airlock reads, through one splitter:
//! - [`Reference`]: a tag or a digest, what `/v2/<name>/manifests/<reference>` names;
//! - [`ImageRef`]: `REPO:TAG`, `REPO@DIGEST` or `REPO:TAG@DIGEST`, the repository as stored
//!   (what an application's index names); [`Target`], `REPO[:TAG]`, is its digest-less form.
//!   [`ImageRef::resolve`] and [`Target::place`] read what a user writes (`export`, `diff`,
//!   `add --as`) in docker's forms and name the stored repository by the rule of `resolve`;
//! - [`DockerRef`]: an image reference as docker reads it (`nginx:1.27`,
//!   `registry.local:5000/team/app@sha256:...`), normalized by [`normalize_docker_reference`].
//!
//! In all three, the tag is after the last `:` that follows the last `/` (a `:` before is a
//! registry's port) and the digest after the first `@`.

use std::{fmt, str::FromStr};

use crate::{
    digest::Digest,
    error::Error,
    name::{Namespace, RepoName, Tag},
    resolve::RepoQuery,
};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's API host.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// What a manifest endpoint names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag, which moves.
    Tag(Tag),
    /// A digest, which does not.
    Digest(Digest),
}

impl Reference {
    /// The digest, when the reference is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }

    /// The tag, when the reference is one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    /// Text with a `:` is a digest (tags cannot hold one) and fails as a digest; anything else
    /// must be a tag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t.as_str()),
            Reference::Digest(d) => f.write_str(d.as_str()),
        }
    }
}

/// The parts of `NAME[:TAG][@DIGEST]`, the digest parsed, the rest as text.
struct Parts<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<Digest>,
}

/// The one splitter behind every reference form.
fn split(text: &str) -> Result<Parts<'_>, Error> {
    let invalid = |why: String| Error::InvalidReference {
        text: text.to_owned(),
        why,
    };
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => {
            let digest = d
                .parse::<Digest>()
                .map_err(|e| invalid(format!("the part after @ is not a digest: {e}")))?;
            (r, Some(digest))
        }
        None => (text, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    Ok(Parts { name, tag, digest })
}

fn parse_tag(text: &str, tag: Option<&str>) -> Result<Option<Tag>, Error> {
    tag.map(|t| {
        t.parse::<Tag>().map_err(|e| Error::InvalidReference {
            text: text.to_owned(),
            why: e.to_string(),
        })
    })
    .transpose()
}

fn parse_repo(text: &str, name: &str) -> Result<RepoName, Error> {
    name.parse::<RepoName>()
        .map_err(|e| Error::InvalidReference {
            text: text.to_owned(),
            why: e.to_string(),
        })
}

fn parse_query(text: &str, name: &str) -> Result<RepoQuery, Error> {
    name.parse::<RepoQuery>()
        .map_err(|e| Error::InvalidReference {
            text: text.to_owned(),
            why: e.to_string(),
        })
}

/// `REPO:TAG`, `REPO@DIGEST` or `REPO:TAG@DIGEST`: a manifest in a repository, named as it is
/// stored (no normalization).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The repository.
    pub repo: RepoName,
    /// The tag, when one was named.
    pub tag: Option<Tag>,
    /// The digest, when one was named; it wins over the tag when both are.
    pub digest: Option<Digest>,
}

impl FromStr for ImageRef {
    type Err = Error;

    /// Needs a tag or a digest.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = split(s)?;
        let repo = parse_repo(s, parts.name)?;
        let tag = parse_tag(s, parts.tag)?;
        if tag.is_none() && parts.digest.is_none() {
            return Err(Error::InvalidReference {
                text: s.to_owned(),
                why: "name a tag (REPO:TAG) or a digest (REPO@DIGEST)".into(),
            });
        }
        Ok(ImageRef {
            repo,
            tag,
            digest: parts.digest,
        })
    }
}

impl ImageRef {
    /// Reads an image reference as a user writes it, in docker's forms (`nginx:1.27`,
    /// `acme/gateway:1.0.0`, `registry.example.com/x/y:1`, `REPO@DIGEST`), and names the stored
    /// repository it means by the one rule, [`RepoQuery::place`]: `acme/gateway` is
    /// `docker.io/acme/gateway` when only that is stored, an error naming both when both are.
    /// A repository not stored keeps the name as written, for the caller to report unknown.
    /// Needs a tag or a digest.
    pub fn resolve<E: From<Error>>(
        text: &str,
        is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
    ) -> Result<ImageRef, E> {
        let parts = split(text)?;
        let query = parse_query(text, parts.name)?;
        let tag = parse_tag(text, parts.tag)?;
        if tag.is_none() && parts.digest.is_none() {
            return Err(Error::InvalidReference {
                text: text.to_owned(),
                why: "name a tag (REPO:TAG) or a digest (REPO@DIGEST)".into(),
            }
            .into());
        }
        Ok(ImageRef {
            repo: query.place(is_stored)?,
            tag,
            digest: parts.digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.repo.as_str())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `REPO[:TAG]`: where to store an image, the repository taken literally (no docker
/// normalization), the tag optional.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The repository, as stored and served.
    pub repo: RepoName,
    /// The tag, if given.
    pub tag: Option<Tag>,
}

impl FromStr for Target {
    type Err = Error;

    /// Refuses a digest: a target names where content goes, not which content.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = split(s)?;
        if parts.digest.is_some() {
            return Err(Error::InvalidReference {
                text: s.to_owned(),
                why: "a digest names content, not where to store it: give REPO[:TAG]".into(),
            });
        }
        Ok(Target {
            repo: parse_repo(s, parts.name)?,
            tag: parse_tag(s, parts.tag)?,
        })
    }
}

impl Target {
    /// Reads `REPO[:TAG]` as a user writes it (docker's forms, as [`ImageRef::resolve`]) and
    /// names the repository to store into by [`RepoQuery::place`]: the stored repository a pull
    /// of that name reads, else the name itself.
    pub fn place<E: From<Error>>(
        text: &str,
        is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
    ) -> Result<Target, E> {
        let parts = split(text)?;
        if parts.digest.is_some() {
            return Err(Error::InvalidReference {
                text: text.to_owned(),
                why: "a digest names content, not where to store it: give REPO[:TAG]".into(),
            }
            .into());
        }
        let query = parse_query(text, parts.name)?;
        Ok(Target {
            tag: parse_tag(text, parts.tag)?,
            repo: query.place(is_stored)?,
        })
    }
}

/// An image reference read the way docker reads it, with the repository airlock keeps it under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DockerRef {
    /// Registry host, with port if any, as written (`docker.io`, `localhost:5000`).
    pub host: String,
    /// Path on the registry (`library/nginx`).
    pub path: RepoName,
    /// Tag, if given.
    pub tag: Option<Tag>,
    /// Digest, if given.
    pub digest: Option<Digest>,
    repository: RepoName,
}

impl DockerRef {
    /// The repository airlock keeps the image under: the path in the host's namespace
    /// ([`RepoName::in_namespace`]), `docker.io/library/nginx` or `localhost_5000/team/app`.
    pub fn repository(&self) -> &RepoName {
        &self.repository
    }

    /// The host to send API requests to (Docker Hub's API lives at `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.host
        }
    }
}

impl fmt::Display for DockerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's normalization of `[host[:port]/]path[:tag][@digest]`: a first component with a `.`
/// or a `:`, or `localhost`, is a registry host; without one the image is on Docker Hub
/// (`docker.io`, also spelled `index.docker.io`, `registry-1.docker.io` and
/// `registry.hub.docker.com`), where a one-component path is in `library/`. The repository it is
/// kept under is its path in the host's namespace.
pub fn normalize_docker_reference(text: &str) -> Result<DockerRef, Error> {
    let parts = split(text)?;
    let tag = parse_tag(text, parts.tag)?;
    let (host, path, repository) =
        docker_name(parts.name).map_err(|why| Error::InvalidReference {
            text: text.to_owned(),
            why,
        })?;
    Ok(DockerRef {
        host: host.to_owned(),
        path,
        tag,
        digest: parts.digest,
        repository,
    })
}

/// Docker's normalization of a name without tag or digest: its registry host, its path there,
/// and the repository airlock keeps it under; or why it is not a name.
pub(crate) fn docker_name(name: &str) -> Result<(&str, RepoName, RepoName), String> {
    let (host, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, path)
        }
        _ => (DOCKER_HUB, name),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    };
    if path.is_empty() {
        return Err("no repository".into());
    }
    let path = if host == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    let path: RepoName = path.parse().map_err(|e: Error| e.to_string())?;
    let namespace: Namespace = host.parse().map_err(|e: Error| e.to_string())?;
    let repository = path.in_namespace(&namespace).map_err(|e| e.to_string())?;
    Ok((host, path, repository))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn references_are_tags_or_digests() {
        let d: Digest = D.parse().expect("digest");
        assert_eq!(D.parse::<Reference>(), Ok(Reference::Digest(d.clone())));
        assert_eq!(
            "latest"
                .parse::<Reference>()
                .expect("tag")
                .tag()
                .map(Tag::as_str),
            Some("latest")
        );
        assert_eq!(Reference::Digest(d).to_string(), D);
        assert!(matches!(
            "sha256:baddigeststring".parse::<Reference>(),
            Err(Error::InvalidDigest { .. })
        ));
        assert!(matches!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Reference>(),
            Err(Error::UnsupportedDigest { .. })
        ));
        assert!(matches!(
            ".bad".parse::<Reference>(),
            Err(Error::InvalidTag { .. })
        ));
    }

    #[test]
    fn image_refs_are_literal() {
        let r: ImageRef = "shop/web:1.2".parse().expect("tag");
        assert_eq!(
            (r.repo.as_str(), r.tag.as_ref().map(Tag::as_str)),
            ("shop/web", Some("1.2"))
        );
        let r: ImageRef = format!("shop/web@{D}").parse().expect("digest");
        assert_eq!(
            (r.tag, r.digest.map(|d| d.to_string())),
            (None, Some(D.to_owned()))
        );
        let r: ImageRef = format!("a/b:c@{D}").parse().expect("both");
        assert_eq!(r.to_string(), format!("a/b:c@{D}"), "displays as written");
        for bad in [
            "shop/web",
            "localhost:5000/shop",
            ":tag",
            "a@sha256:zz",
            "Shop/web:1",
            "shop/web:",
            "shop/web:.x",
        ] {
            assert!(
                matches!(bad.parse::<ImageRef>(), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn targets_are_literal() {
        let t: Target = "myapp:1.0".parse().expect("target");
        assert_eq!(
            (t.repo.as_str(), t.tag.as_ref().map(Tag::as_str)),
            ("myapp", Some("1.0"))
        );
        let t: Target = "registry.local_5000/a/b".parse().expect("target");
        assert_eq!(t.tag, None);
        assert!("My/App".parse::<Target>().is_err());
        assert!(format!("a@{D}").parse::<Target>().is_err());
    }

    #[test]
    fn issue_15_user_references_resolve_to_stored_repositories() {
        let stored = |names: &'static [&'static str]| {
            move |n: &RepoName| Ok::<_, Error>(names.contains(&n.as_str()))
        };
        let added = stored(&[
            "docker.io/acme/gateway",
            "docker.io/library/nginx",
            "cli/app",
        ]);
        let resolve = |text: &str| ImageRef::resolve(text, added).map(|r| r.to_string());
        assert_eq!(
            resolve("acme/gateway:1.0.0").as_deref(),
            Ok("docker.io/acme/gateway:1.0.0")
        );
        assert_eq!(
            resolve(&format!("nginx@{D}")),
            Ok(format!("docker.io/library/nginx@{D}"))
        );
        assert_eq!(
            resolve("docker.io/library/nginx:1.27").as_deref(),
            Ok("docker.io/library/nginx:1.27")
        );
        assert_eq!(resolve("cli/app:v1").as_deref(), Ok("cli/app:v1"));
        // Not stored: the name as written (in a repository name's spelling).
        assert_eq!(resolve("other/app:1").as_deref(), Ok("other/app:1"));
        assert_eq!(
            resolve("registry.local:5000/team/app:1").as_deref(),
            Ok("registry.local_5000/team/app:1")
        );
        for bad in [
            "acme/gateway",
            "Acme/gateway:1",
            "nginx:.x",
            "nginx@sha256:zz",
        ] {
            assert!(
                matches!(resolve(bad), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }
        let both = stored(&["acme/gateway", "docker.io/acme/gateway"]);
        let err = ImageRef::resolve("acme/gateway:1.0.0", both).expect_err("ambiguous");
        assert!(matches!(err, Error::AmbiguousName { .. }), "{err}");

        let t = Target::place("acme/gateway:2", added).expect("target");
        assert_eq!(
            (t.repo.as_str(), t.tag.as_ref().map(Tag::as_str)),
            ("docker.io/acme/gateway", Some("2"))
        );
        let t = Target::place("vendor/app", added).expect("new name");
        assert_eq!((t.repo.as_str(), t.tag), ("vendor/app", None));
        assert!(Target::place(&format!("a@{D}"), added).is_err());
        assert!(Target::place("acme/gateway", both).is_err());
    }

    fn docker(s: &str) -> (String, Option<String>) {
        let r = normalize_docker_reference(s).expect(s);
        (r.repository().to_string(), r.tag.map(|t| t.to_string()))
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(
            docker("nginx:1.27"),
            ("docker.io/library/nginx".into(), Some("1.27".into()))
        );
        assert_eq!(docker("bitnami/redis").0, "docker.io/bitnami/redis");
        assert_eq!(
            docker("index.docker.io/library/alpine:3").0,
            "docker.io/library/alpine"
        );
        assert_eq!(
            docker("localhost:5000/team/app:v1"),
            ("localhost_5000/team/app".into(), Some("v1".into()))
        );
        assert_eq!(docker("quay.io/prometheus/node-exporter").1, None);
        let r = normalize_docker_reference(&format!("ghcr.io/a/b:1@{D}")).expect("digest ref");
        assert_eq!(r.digest.as_ref().map(Digest::to_string), Some(D.to_owned()));
        assert_eq!(r.api_host(), "ghcr.io");
        assert_eq!(r.path.as_str(), "a/b");
        let hub = normalize_docker_reference("alpine").expect("hub");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.to_string(), "docker.io/library/alpine");
        for bad in [
            "Nginx:1",
            "nginx:bad tag",
            "nginx@sha256:zz",
            "quay.io/",
            "bad_host.io:x/a",
        ] {
            assert!(normalize_docker_reference(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = s.parse::<Reference>();
            let _ = s.parse::<ImageRef>();
            let _ = s.parse::<Target>();
            let _ = normalize_docker_reference(&s);
            let _ = s.parse::<crate::RepoQuery>();
            let _ = ImageRef::resolve(&s, |_| Ok::<_, Error>(true));
        }

        #[test]
        fn image_refs_round_trip(repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,10}") {
            let text = format!("{repo}:{tag}");
            let r: ImageRef = text.parse().expect("valid");
            prop_assert_eq!(r.to_string(), text);
        }
    }
}
