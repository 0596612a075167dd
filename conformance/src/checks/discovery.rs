//! Content discovery (end-8a, end-8b, end-12a, end-12b): tags lists with pagination, and the
//! referrers API with its `artifactType` filter.

use hyper::Method;
use serde_json::{Value, json};

use super::expect_media_type;
use crate::{
    check::{Conformance, Optional},
    content::{Blob, ImageBuilder, OCI_EMPTY, OCI_INDEX},
    error::{Error, ensure},
    http::{Response, percent_encode},
};

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIGNATURE_CONFIG: &str = "application/vnd.example.signature.config.v1+json";
const ANNOTATION: &str = "org.example.conformance";

/// end-8a.
pub(crate) async fn tags_list(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("tags");
    let tags = ["v1.0", "latest", "a", "v0.9", "beta-1", "1.2.3"];
    push_tagged(c, &repo, &tags).await?;
    let resp = tags_page(c, &format!("/v2/{repo}/tags/list")).await?;
    let body = resp.json()?;
    ensure!(
        body["name"] == repo.as_str(),
        "tags list names {}, expected {repo}",
        body["name"]
    );
    let mut sorted = tags.map(str::to_owned).to_vec();
    sorted.sort();
    expect_tags(&resp, &sorted)
}

/// end-8b.
pub(crate) async fn tags_pagination(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("pages");
    let tags = ["e5", "a1", "c3", "b2", "d4"];
    push_tagged(c, &repo, &tags).await?;
    let list = format!("/v2/{repo}/tags/list");

    // Following Link from n=2 walks the whole list in order, two at a time.
    let mut target = format!("{list}?n=2");
    let mut seen = Vec::new();
    for expected in [&["a1", "b2"][..], &["c3", "d4"], &["e5"], &[]] {
        let resp = tags_page(c, &target).await?;
        expect_tags(&resp, expected)?;
        seen.extend(expected.iter().copied());
        match resp.next_link() {
            Some(next) => target = next,
            None if seen.len() == tags.len() => break,
            None if c.optional == Optional::Allow && expected.len() == 2 => {
                // Without Link, a client pages with `last`.
                target = format!("{list}?n=2&last={}", expected[1]);
            }
            None => {
                return Err(resp.violation(format!(
                    "{} of {} tags returned and no Link: <...>; rel=\"next\"",
                    seen.len(),
                    tags.len()
                )));
            }
        }
    }
    ensure!(
        seen.len() == tags.len(),
        "paging from {list}?n=2 returned only {seen:?}"
    );

    let zero = tags_page(c, &format!("{list}?n=0")).await?;
    expect_tags(&zero, &[] as &[&str])?;
    ensure!(
        zero.next_link().is_none(),
        "GET {list}?n=0 has a Link header, which n=0 forbids"
    );
    expect_tags(
        &tags_page(c, &format!("{list}?last=b2")).await?,
        &["c3", "d4", "e5"],
    )?;
    expect_tags(
        &tags_page(c, &format!("{list}?n=2&last=a1")).await?,
        &["b2", "c3"],
    )?;
    let all = tags_page(c, &format!("{list}?n=10")).await?;
    expect_tags(&all, &["a1", "b2", "c3", "d4", "e5"])?;
    ensure!(
        all.next_link().is_none(),
        "GET {list}?n=10 of 5 tags has a Link header"
    );
    Ok(())
}

/// end-12a.
pub(crate) async fn referrers(c: &Conformance) -> Result<(), Error> {
    // A repository nothing was pushed to still answers with an empty list.
    let empty_repo = c.repo("no-referrers");
    let nothing = Blob::random(10);
    expect_referrers(c, &empty_repo, &nothing.digest, "", &[]).await?;

    let setup = push_referrers(c).await?;
    expect_referrers(c, &setup.repo, &setup.subject.digest, "", &setup.referrers).await?;
    // The subject's own manifest has no referrers.
    let sbom = &setup.referrers[0].blob;
    expect_referrers(c, &setup.repo, &sbom.digest, "", &[]).await?;

    // A referrer may come before its subject, and the referrers list is per repository.
    let absent = ImageBuilder::new().build().manifest;
    let early = push_artifact(c, &setup.repo, &absent, Some(SBOM), None).await?;
    expect_referrers(c, &setup.repo, &absent.digest, "", &[early]).await?;
    let other_repo = c.repo("other-referrers");
    push_artifact(c, &other_repo, &setup.subject, Some(SBOM), None).await?;
    expect_referrers(c, &setup.repo, &setup.subject.digest, "", &setup.referrers).await?;

    let bad = format!("/v2/{}/referrers/sha256:not-a-digest", setup.repo);
    c.registry
        .request(Method::GET, &bad)
        .send()
        .await?
        .expect(&[400])?;
    Ok(())
}

/// end-12b.
pub(crate) async fn referrers_filter(c: &Conformance) -> Result<(), Error> {
    let setup = push_referrers(c).await?;
    let sboms: Vec<Referrer> = setup
        .referrers
        .iter()
        .filter(|r| r.artifact_type.as_deref() == Some(SBOM))
        .cloned()
        .collect();
    ensure!(
        sboms.len() == 1,
        "setup made {} sbom referrers",
        sboms.len()
    );
    expect_referrers(c, &setup.repo, &setup.subject.digest, SBOM, &sboms).await?;
    expect_referrers(
        c,
        &setup.repo,
        &setup.subject.digest,
        "application/vnd.example.none",
        &[],
    )
    .await
}

/// A referrer as the list must describe it.
#[derive(Clone, Debug)]
struct Referrer {
    blob: Blob,
    artifact_type: Option<String>,
}

struct ReferrersSetup {
    repo: String,
    subject: Blob,
    referrers: Vec<Referrer>,
}

/// A subject image and three referrers: an sbom artifact (its own `artifactType`), a signature
/// (no `artifactType`, so its config media type), and an index (no `artifactType` at all).
async fn push_referrers(c: &Conformance) -> Result<ReferrersSetup, Error> {
    let repo = c.repo("referrers");
    let subject = ImageBuilder::new().build();
    c.registry
        .push_image(&repo, &c.tag("subject"), &subject)
        .await?;
    let subject = subject.manifest;
    let sbom = push_artifact(c, &repo, &subject, Some(SBOM), None).await?;
    let config = Blob::json(SIGNATURE_CONFIG, &json!({ "signature": "conformance" }));
    let signature = push_artifact(c, &repo, &subject, None, Some(config)).await?;

    let index = Blob::json(
        OCI_INDEX,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [sbom.blob.descriptor()],
            "subject": subject.descriptor(),
            "annotations": { ANNOTATION: "index" },
        }),
    );
    push_with_subject(c, &repo, &index, &subject).await?;
    let index = Referrer {
        blob: index,
        artifact_type: None,
    };
    Ok(ReferrersSetup {
        repo,
        subject,
        referrers: vec![sbom, signature, index],
    })
}

/// Pushes an artifact whose subject is `subject`: an `artifactType` and the empty config, or a
/// config of its own.
async fn push_artifact(
    c: &Conformance,
    repo: &str,
    subject: &Blob,
    artifact_type: Option<&str>,
    config: Option<Blob>,
) -> Result<Referrer, Error> {
    let mut builder = ImageBuilder::new()
        .layers(1)
        .subject(subject)
        .annotation(ANNOTATION, "artifact");
    if let Some(artifact_type) = artifact_type {
        builder = builder.artifact_type(artifact_type);
    }
    let config = config.unwrap_or_else(|| Blob::new(OCI_EMPTY, "{}"));
    let expected_type = artifact_type.map_or_else(|| config.media_type.clone(), str::to_owned);
    let artifact = builder.config(config).build();
    for blob in artifact.blobs() {
        c.registry.push_blob(repo, blob).await?;
    }
    push_with_subject(c, repo, &artifact.manifest, subject).await?;
    Ok(Referrer {
        blob: artifact.manifest,
        artifact_type: Some(expected_type),
    })
}

/// Pushes a manifest with a `subject` by digest; the registry must answer `OCI-Subject`.
async fn push_with_subject(
    c: &Conformance,
    repo: &str,
    manifest: &Blob,
    subject: &Blob,
) -> Result<(), Error> {
    let resp = c
        .registry
        .push_manifest(repo, &manifest.digest, manifest)
        .await?;
    let got = resp.require_header("oci-subject")?;
    if got != subject.digest {
        return Err(resp.violation(format!("OCI-Subject is {got}, expected {}", subject.digest)));
    }
    Ok(())
}

/// GETs the referrers of `digest` (filtered by `artifact_type` unless empty) and checks the
/// list is exactly `expected`, each entry described as the spec requires.
async fn expect_referrers(
    c: &Conformance,
    repo: &str,
    digest: &str,
    artifact_type: &str,
    expected: &[Referrer],
) -> Result<(), Error> {
    let mut path = format!("/v2/{repo}/referrers/{digest}");
    if !artifact_type.is_empty() {
        path = format!("{path}?artifactType={}", percent_encode(artifact_type));
    }
    let resp = c
        .registry
        .request(Method::GET, &path)
        .send()
        .await?
        .expect(&[200])?;
    expect_media_type(&resp, OCI_INDEX)?;
    let index = resp.json()?;
    if index["schemaVersion"] != 2 || index["mediaType"] != OCI_INDEX {
        return Err(resp.violation("not an OCI index (schemaVersion 2, mediaType index)"));
    }
    let Some(listed) = index["manifests"].as_array() else {
        return Err(resp.violation("no manifests array"));
    };
    let filtered = resp
        .header_all("oci-filters-applied")
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "artifactType");
    let expected: Vec<&Referrer> = if artifact_type.is_empty() || filtered {
        expected.iter().collect()
    } else if c.optional == Optional::Allow {
        return Ok(());
    } else {
        return Err(resp.violation("no OCI-Filters-Applied: artifactType on a filtered request"));
    };
    for referrer in &expected {
        let entry = listed
            .iter()
            .find(|d| d["digest"] == referrer.blob.digest.as_str());
        let Some(entry) = entry else {
            return Err(resp.violation(format!("referrer {} is missing", referrer.blob.digest)));
        };
        expect_descriptor(&resp, entry, referrer)?;
    }
    if listed.len() != expected.len() {
        let digests: Vec<&Value> = listed.iter().map(|d| &d["digest"]).collect();
        return Err(resp.violation(format!(
            "lists {} referrers {digests:?}, expected {}",
            listed.len(),
            expected.len()
        )));
    }
    Ok(())
}

fn expect_descriptor(resp: &Response, entry: &Value, referrer: &Referrer) -> Result<(), Error> {
    let blob = &referrer.blob;
    let wrong = |what: String| Err(resp.violation(format!("referrer {}: {what}", blob.digest)));
    if entry["mediaType"] != blob.media_type.as_str() {
        return wrong(format!(
            "mediaType {}, expected {}",
            entry["mediaType"], blob.media_type
        ));
    }
    if entry["size"] != blob.size() {
        return wrong(format!("size {}, expected {}", entry["size"], blob.size()));
    }
    match (&referrer.artifact_type, entry.get("artifactType")) {
        (Some(expected), Some(got)) if got == expected.as_str() => {}
        (None, None) => {}
        (expected, got) => return wrong(format!("artifactType {got:?}, expected {expected:?}")),
    }
    let manifest: Value = serde_json::from_slice(&blob.bytes).unwrap_or_default();
    if let Some(annotations) = manifest["annotations"].as_object() {
        for (key, value) in annotations {
            if entry["annotations"][key] != *value {
                return wrong(format!(
                    "annotation {key} is {}, expected {value}",
                    entry["annotations"][key]
                ));
            }
        }
    }
    Ok(())
}

/// Pushes one small image and tags it with each of `tags`.
async fn push_tagged(c: &Conformance, repo: &str, tags: &[&str]) -> Result<(), Error> {
    let image = ImageBuilder::new().layers(0).build();
    c.registry.push_image(repo, tags[0], &image).await?;
    for tag in &tags[1..] {
        c.registry.push_manifest(repo, tag, &image.manifest).await?;
    }
    Ok(())
}

async fn tags_page(c: &Conformance, target: &str) -> Result<Response, Error> {
    c.registry
        .request(Method::GET, target)
        .send()
        .await?
        .expect(&[200])
}

/// The `tags` of a tags list are exactly `expected`, in that order.
fn expect_tags(resp: &Response, expected: &[impl AsRef<str>]) -> Result<(), Error> {
    let body = resp.json()?;
    let got: Vec<&str> = match &body["tags"] {
        Value::Array(tags) => tags.iter().filter_map(Value::as_str).collect(),
        other => return Err(resp.violation(format!("tags is {other}, not a list"))),
    };
    let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    if got != expected {
        return Err(resp.violation(format!("tags {got:?}, expected {expected:?}")));
    }
    Ok(())
}
