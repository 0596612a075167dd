//! Image references as users and archives write them (`nginx:1.27`,
//! `registry.example.com:5000/team/app@sha256:...`), normalized the way docker does, and the
//! repository names airlock stores them under (registry host kept, as containerd's `ns=`
//! mirror requests read them).

use std::{fmt, str::FromStr};

use airlock_registry::{Namespace, RepoName, Tag};
use airlock_store::Digest;
use anyhow::{Result, anyhow, bail};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, with port if any (`docker.io`, `localhost:5000`).
    pub host: String,
    /// Path on the registry (`library/nginx`).
    pub path: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// The repository airlock stores the image under: `<host>/<path>`, a port written after `_`
    /// as the registry's `ns=` mapping does (`localhost:5000` gives `localhost_5000/...`).
    pub fn repository(&self) -> Result<String> {
        let path: RepoName = self
            .path
            .parse()
            .map_err(|e| anyhow!("invalid repository {:?}: {e}", self.path))?;
        let ns: Namespace = self
            .host
            .parse()
            .map_err(|e| anyhow!("invalid registry host {:?}: {e}", self.host))?;
        let repo = path
            .in_namespace(&ns)
            .map_err(|e| anyhow!("invalid repository {}/{}: {e}", self.host, self.path))?;
        Ok(repo.as_str().to_owned())
    }

    /// The host to send API requests to (Docker Hub's API lives at `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }
}

impl FromStr for ImageRef {
    type Err = anyhow::Error;

    /// Parses `[host[:port]/]path[:tag][@digest]`; without a host the image is on Docker Hub,
    /// and a one-component path there is in `library/`.
    fn from_str(s: &str) -> Result<ImageRef> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| anyhow!("invalid digest in {s:?}: {e}"))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before is a port).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            t.parse::<Tag>()
                .map_err(|e| anyhow!("invalid tag in {s:?}: {e}"))?;
        }
        let (host, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let host = match host.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                DOCKER_HUB.to_owned()
            }
            _ => host,
        };
        let path = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.is_empty() {
            bail!("invalid image reference {s:?}: no repository");
        }
        let r = ImageRef {
            host,
            path,
            tag,
            digest,
        };
        r.repository()
            .map_err(|e| anyhow!("invalid image reference {s:?}: {e}"))?;
        Ok(r)
    }
}

impl fmt::Display for ImageRef {
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

/// `--as REPO[:TAG]`: a repository name taken literally (no docker normalization) and an
/// optional tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The repository, as stored and served.
    pub repo: String,
    /// The tag, if given.
    pub tag: Option<String>,
}

impl FromStr for Target {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Target> {
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match s[slash..].rfind(':') {
            Some(i) => (&s[..slash + i], Some(s[slash + i + 1..].to_owned())),
            None => (s, None),
        };
        let repo: RepoName = repo
            .parse()
            .map_err(|e| anyhow!("invalid --as {s:?}: {e}"))?;
        if let Some(t) = &tag {
            t.parse::<Tag>()
                .map_err(|e| anyhow!("invalid --as {s:?}: {e}"))?;
        }
        Ok(Target {
            repo: repo.as_str().to_owned(),
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> (String, Option<String>) {
        let r: ImageRef = s.parse().expect(s);
        (r.repository().expect("repo"), r.tag)
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(
            repo("nginx:1.27"),
            ("docker.io/library/nginx".into(), Some("1.27".into()))
        );
        assert_eq!(repo("bitnami/redis").0, "docker.io/bitnami/redis");
        assert_eq!(
            repo("index.docker.io/library/alpine:3").0,
            "docker.io/library/alpine"
        );
        assert_eq!(
            repo("localhost:5000/team/app:v1"),
            ("localhost_5000/team/app".into(), Some("v1".into()))
        );
        assert_eq!(repo("quay.io/prometheus/node-exporter").1, None);
        let r: ImageRef = format!("ghcr.io/a/b:1@{}", Digest::sha256(b"x"))
            .parse()
            .expect("digest ref");
        assert_eq!(r.digest, Some(Digest::sha256(b"x")));
        assert_eq!(r.api_host(), "ghcr.io");
        let hub: ImageRef = "alpine".parse().expect("hub");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert!("Nginx:1".parse::<ImageRef>().is_err());
        assert!("nginx:bad tag".parse::<ImageRef>().is_err());
        assert!("nginx@sha256:zz".parse::<ImageRef>().is_err());
    }

    #[test]
    fn targets_are_literal() {
        let t: Target = "myapp:1.0".parse().expect("target");
        assert_eq!((t.repo.as_str(), t.tag.as_deref()), ("myapp", Some("1.0")));
        let t: Target = "registry.local_5000/a/b".parse().expect("target");
        assert_eq!(t.tag, None);
        assert!("My/App".parse::<Target>().is_err());
    }
}
