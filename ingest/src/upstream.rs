//! `docker://HOST/REPO:TAG` (or `@DIGEST`): pulling from an upstream registry. Manifests and
//! indexes are kept byte for byte (all platforms of an index by default; with `--platform` the
//! index is stored and tagged as it is with only the chosen platforms' manifests, by the rule
//! `airlock export --platform` applies, [`airlock_oci::choose_platforms`]). Referrers
//! (signatures, SBOMs) come along through the referrers API, and cosign's `sha256-<hex>.sig`,
//! `.att` and `.sbom` tags of the root when the registry has them. The image is stored under a
//! name that keeps its registry host (`docker.io/library/nginx`), as containerd's `ns=` mirror
//! requests read it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use airlock_oci::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, Digest, MAX_MANIFEST_BYTES, OCI_INDEX,
    OCI_MANIFEST, Platform, Tag, Target, normalize_docker_reference,
};
use hyper::{StatusCode, header};

use crate::{
    Untagged,
    auth::Credentials,
    error::{Context as _, Result, err, fail},
    http::{Client, Response, header_text},
    plan::{BlobSource, ImagePlan, ManifestNode, ManifestSource, Walked, finish_platforms, latest},
    progress::Progress,
};

/// `Docker-Content-Digest`: the digest of the manifest a response holds.
const DOCKER_CONTENT_DIGEST: header::HeaderName =
    header::HeaderName::from_static("docker-content-digest");
/// Manifests fetched at most per image (referrers included): a bound on hostile graphs.
const MAX_MANIFESTS: usize = 10_000;
/// Every manifest type airlock stores.
const ACCEPT: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// How to reach an upstream.
#[derive(Clone, Debug, Default)]
pub struct UpstreamOptions {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Credentials from flags (else docker's config file is read).
    pub credentials: Option<Credentials>,
}

/// A fetched manifest: its bytes, `Content-Type` and `Docker-Content-Digest`.
type Fetched = (Vec<u8>, Option<String>, Option<Digest>);

/// One repository on an upstream registry.
#[derive(Debug)]
struct Upstream {
    client: Client,
    path: String,
    scope: String,
    /// Manifests already fetched, by digest.
    cache: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl Upstream {
    fn get(&self, what: &str, accept: &[&str]) -> Result<Response> {
        let path = format!("/v2/{}/{what}", self.path);
        self.client.get(&path, accept, &self.scope)
    }

    /// A manifest by tag or digest; `None` when the registry says it does not exist.
    fn manifest(&self, reference: &str) -> Result<Option<Fetched>> {
        let resp = self.get(&format!("manifests/{reference}"), &ACCEPT)?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = resp.status;
        let media_type = header_text(&resp.headers, &header::CONTENT_TYPE).map(str::to_owned);
        let digest = header_text(&resp.headers, &DOCKER_CONTENT_DIGEST)
            .and_then(|d| d.parse::<Digest>().ok());
        let body = self.client.read_body(resp, MAX_MANIFEST_BYTES)?;
        if !status.is_success() {
            fail!(
                Upstream,
                "GET manifest {}:{reference}: {status}: {}",
                self.path,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
        }
        Ok(Some((body, media_type, digest)))
    }
}

impl ManifestSource for Upstream {
    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        if let Some(b) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&d.digest).cloned())
        {
            return Ok(b);
        }
        let (bytes, _, _) = self
            .manifest(d.digest.as_str())?
            .ok_or_else(|| err!(Upstream, "manifest {} is not in {}", d.digest, self.path))?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(d.digest.clone(), bytes.clone());
        }
        Ok(bytes)
    }
}

impl BlobSource for Upstream {
    fn open_blob(&self, blob: &Descriptor) -> Result<Box<dyn std::io::Read + Send + '_>> {
        let resp = self.get(&format!("blobs/{}", blob.digest), &["*/*"])?;
        if resp.status != StatusCode::OK {
            let status = resp.status;
            let body = self.client.read_body(resp, 64 * 1024).unwrap_or_default();
            fail!(
                Upstream,
                "GET blob {}: {status}: {}",
                blob.digest,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
        }
        Ok(Box::new(self.client.stream_body(resp)))
    }

    fn describe(&self, blob: &Descriptor) -> String {
        format!("upstream blob {}@{}", self.path, blob.digest)
    }
}

/// Plans the image `spec` (what follows `docker://`). Without a tag (a pull by digest) the
/// image needs `--as REPO:TAG` unless `untagged` allows it (an app file's index reaches it).
pub fn plan(
    spec: &str,
    target: Option<&Target>,
    opts: &UpstreamOptions,
    platforms: &[Platform],
    untagged: Untagged,
    progress: &dyn Progress,
) -> Result<Vec<ImagePlan>> {
    let label = format!("docker://{spec}");
    let r = normalize_docker_reference(spec).context(|| label.clone())?;
    let credentials = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => Credentials::from_docker_config(&r.host)?,
    };
    let upstream = Arc::new(Upstream {
        client: Client::new(r.api_host(), opts.insecure, credentials)?,
        scope: format!("repository:{}:pull", r.path),
        path: r.path.to_string(),
        cache: Mutex::new(HashMap::new()),
    });
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_owned(),
    };
    let (bytes, media_type, header_digest) = upstream
        .manifest(&reference)
        .context(|| label.clone())?
        .ok_or_else(|| err!(Upstream, "{label}: not found on {}", r.host))?;
    let expected = r.digest.clone().or(header_digest);
    let top = ManifestNode::new(bytes.clone(), media_type.as_deref(), expected.as_ref())
        .context(|| label.clone())?;
    if let Ok(mut c) = upstream.cache.lock() {
        c.insert(top.digest.clone(), bytes.clone());
    }
    let root = top.descriptor();
    let mut walked = Walked::with_platforms(platforms);
    let root_node = walked
        .walk(upstream.as_ref(), &root)
        .context(|| label.clone())?;
    let extra_tags = copy_referrers(&upstream, &mut walked, &root_node.digest, progress)
        .context(|| format!("{label}: referrers"))?;
    let repo = match target {
        Some(t) => t.repo.clone(),
        None => r.repository().clone(),
    };
    let tag = target
        .and_then(|t| t.tag.clone())
        .or(r.tag.clone())
        .map(Ok)
        .or_else(|| r.digest.is_none().then(latest))
        .transpose()?;
    let tags = match tag {
        Some(t) => vec![t],
        None if untagged == Untagged::Allow => Vec::new(),
        None => fail!(
            Upstream,
            "{label}: a pull by digest needs a tag to keep the image (untagged content is garbage-collected): write docker://{}/{}:TAG@{} or give --as REPO:TAG",
            r.host,
            r.path,
            root_node.digest
        ),
    };
    let plan = ImagePlan {
        label: label.clone(),
        repo,
        tags,
        root: root_node.descriptor(),
        manifests: std::mem::take(&mut walked.manifests),
        extra_tags,
        blobs: std::mem::take(&mut walked.blobs),
        source: upstream,
    };
    let check = walked.check_platforms(&plan)?;
    finish_platforms(&label, platforms, vec![check], progress)?;
    Ok(vec![plan])
}

/// Adds every referrer of every walked manifest (and theirs), through the referrers API, and
/// cosign's tags of the root. Returns the cosign tags found, to set in the repository.
fn copy_referrers(
    upstream: &Upstream,
    walked: &mut Walked,
    root: &Digest,
    progress: &dyn Progress,
) -> Result<Vec<(Tag, Digest)>> {
    let mut asked: HashSet<Digest> = HashSet::new();
    'rounds: loop {
        let pending: Vec<Digest> = walked
            .manifests
            .iter()
            .map(|m| m.digest.clone())
            .filter(|d| !asked.contains(d))
            .collect();
        if pending.is_empty() {
            break;
        }
        for subject in pending {
            asked.insert(subject.clone());
            if walked.manifests.len() > MAX_MANIFESTS {
                fail!(Upstream, "more than {MAX_MANIFESTS} manifests reached");
            }
            let resp = upstream.get(&format!("referrers/{subject}"), &[OCI_INDEX])?;
            if resp.status == StatusCode::NOT_FOUND {
                // A registry with the referrers API answers 200 even when nothing refers.
                break 'rounds;
            }
            if resp.status != StatusCode::OK {
                progress.note(&format!(
                    "note: referrers not copied: the registry answered {} for {subject}",
                    resp.status
                ));
                break 'rounds;
            }
            let body = upstream.client.read_body(resp, MAX_MANIFEST_BYTES)?;
            let list = ManifestNode::new(body, Some(OCI_INDEX), None)
                .context(|| format!("referrers list of {subject}"))?;
            for d in &list.parsed.manifests {
                if !walked.contains(&d.digest) {
                    walked
                        .walk(upstream, d)
                        .context(|| format!("referrer {} of {subject}", d.digest))?;
                }
            }
        }
    }
    let mut tags = Vec::new();
    for suffix in ["sig", "att", "sbom"] {
        let tag: Tag = format!("{}-{}.{suffix}", root.algorithm().name(), root.hex())
            .parse()
            .context(|| format!("cosign tag of {root}"))?;
        let Some((bytes, media_type, _)) = upstream.manifest(tag.as_str())? else {
            continue;
        };
        let node = ManifestNode::new(bytes.clone(), media_type.as_deref(), None)
            .context(|| format!("cosign tag {tag}"))?;
        if let Ok(mut c) = upstream.cache.lock() {
            c.insert(node.digest.clone(), bytes);
        }
        walked
            .walk(upstream, &node.descriptor())
            .context(|| format!("cosign tag {tag}"))?;
        tags.push((tag, node.digest));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{digest::to_oci, plan::fetch_node};

    struct Fixed(Vec<u8>);

    impl ManifestSource for Fixed {
        fn fetch_manifest(&self, _: &Descriptor) -> Result<Vec<u8>> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn a_manifest_that_differs_from_its_digest_is_refused() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let mut d = ManifestNode::new(body.to_vec(), None, None)
            .expect("index")
            .descriptor();
        d.digest = to_oci(&airlock_store::Digest::sha256(b"x")).expect("digest");
        assert!(fetch_node(&Fixed(body.to_vec()), &d).is_err());
    }
}
