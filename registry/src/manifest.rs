//! Pushed manifests: which media types are accepted, how a body is checked before it is stored
//! byte for byte, what it references, and the referrers response (end-12a, end-12b).
//!
//! Accepted: OCI image manifests and indexes (artifacts included: `artifactType`, `subject`), Docker
//! schema 2 manifests and manifest lists. A body must be a JSON object with `schemaVersion` 2; a
//! `mediaType` field, when present, must equal the type the manifest is pushed as (the spec asks
//! clients to send it as the Content-Type, and checking it closes the "ambiguous manifest" hole,
//! CVE-2021-41190), and fields of the other kind (`manifests` in an image manifest, `config` or
//! `layers` in an index) are refused for the same reason. Every descriptor needs a `mediaType`, a
//! sha256 or sha512 `digest` and a non-negative `size`; unknown fields and media types are kept as they
//! are, as the image spec requires.

use std::collections::BTreeMap;

use airlock_store::Digest;
use serde::{Deserialize, Serialize};

use crate::{error::RegistryError, names::Reference};

/// Default largest manifest body accepted, `RegistryConfig::max_manifest_bytes` (the spec:
/// registries should accept at least 4 MB; larger is 413).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// `application/vnd.oci.image.manifest.v1+json`.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`, also the referrers response's type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The kinds of manifest the registry stores; each is served back with its own media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestMediaType {
    /// An OCI image manifest: config and layers.
    OciManifest,
    /// An OCI image index: child manifests.
    OciIndex,
    /// A Docker schema 2 image manifest.
    DockerManifest,
    /// A Docker schema 2 manifest list.
    DockerManifestList,
}

impl ManifestMediaType {
    /// Every accepted type.
    pub const ALL: [ManifestMediaType; 4] = [
        ManifestMediaType::OciManifest,
        ManifestMediaType::OciIndex,
        ManifestMediaType::DockerManifest,
        ManifestMediaType::DockerManifestList,
    ];

    /// The media type string (what the `Content-Type` of a GET says).
    pub const fn as_str(self) -> &'static str {
        match self {
            ManifestMediaType::OciManifest => OCI_MANIFEST,
            ManifestMediaType::OciIndex => OCI_INDEX,
            ManifestMediaType::DockerManifest => DOCKER_MANIFEST,
            ManifestMediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// The type for a `Content-Type` or `mediaType` value, ignoring parameters and case.
    pub fn from_media_type(value: &str) -> Option<ManifestMediaType> {
        let essence = value.split(';').next().unwrap_or("").trim();
        ManifestMediaType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(essence))
    }

    /// Whether the manifest lists other manifests (index, manifest list) rather than blobs.
    pub const fn is_index(self) -> bool {
        matches!(
            self,
            ManifestMediaType::OciIndex | ManifestMediaType::DockerManifestList
        )
    }
}

/// A reference to content by media type, digest and size, as in the image spec's descriptor.
/// Serializes with the spec's field names, leaving out absent optional fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// The referenced content's digest.
    pub digest: Digest,
    /// The referenced content's size in bytes.
    pub size: u64,
    /// The artifact type, in a referrers list or an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Where non-distributable (foreign) content can be fetched instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Whether the content is a non-distributable ("foreign") layer, which a registry need not hold:
    /// a manifest push may reference it without it being stored.
    pub fn is_non_distributable(&self) -> bool {
        let t = self.media_type.as_str();
        t.contains(".nondistributable.") || t.contains(".foreign.")
    }
}

/// What a valid pushed manifest says, for linking, GC and referrers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The type it is stored and served as.
    pub media_type: ManifestMediaType,
    /// The config blob of an image manifest.
    pub config: Option<Descriptor>,
    /// The layer blobs of an image manifest (empty for an index).
    pub layers: Vec<Descriptor>,
    /// The child manifests of an index or manifest list (empty for an image manifest).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (an artifact's `subject`); it need not exist yet.
    pub subject: Option<Descriptor>,
    /// The type for a referrers list: `artifactType`, else an image manifest's `config.mediaType`;
    /// `None` for an index without one.
    pub artifact_type: Option<String>,
    /// The manifest's own annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// The blobs the manifest needs: config, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers)
    }

    /// This manifest's entry in its subject's referrers list, given its own digest and size.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: self.media_type.as_str().to_owned(),
            digest,
            size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
            urls: Vec::new(),
        }
    }
}

/// The fields of any accepted manifest kind; unknown fields are ignored, duplicated ones refused.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    urls: Option<Vec<String>>,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> RegistryError {
    RegistryError::manifest_invalid(format!("{field}: {why}"))
        .with_detail(serde_json::json!({ "field": field }))
}

impl RawDescriptor {
    fn validate(self, field: &str) -> Result<Descriptor, RegistryError> {
        let media_type = self
            .media_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(field, "descriptor has no mediaType"))?;
        let text = self
            .digest
            .ok_or_else(|| invalid(field, "descriptor has no digest"))?;
        let digest = text.parse::<Digest>().map_err(|e| {
            RegistryError::manifest_invalid(format!("{field}.digest: {e}")).with_detail(
                serde_json::json!({ "field": format!("{field}.digest"), "digest": text }),
            )
        })?;
        let size = self
            .size
            .ok_or_else(|| invalid(field, "descriptor has no size"))?;
        let size =
            u64::try_from(size).map_err(|_| invalid(field, format!("negative size {size}")))?;
        Ok(Descriptor {
            media_type,
            digest,
            size,
            artifact_type: self.artifact_type.filter(|t| !t.is_empty()),
            annotations: self.annotations.unwrap_or_default(),
            urls: self.urls.unwrap_or_default(),
        })
    }
}

fn validate_all(raw: Vec<RawDescriptor>, field: &str) -> Result<Vec<Descriptor>, RegistryError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| d.validate(&format!("{field}[{i}]")))
        .collect()
}

/// Content types that say nothing about the manifest kind; the body's `mediaType` decides.
fn is_generic(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.is_empty()
        || ["application/json", "application/octet-stream", "*/*"]
            .iter()
            .any(|g| g.eq_ignore_ascii_case(essence))
}

/// Checks a manifest body pushed with `content_type` (end-7a, end-7b) and says what it references.
///
/// The kind comes from the Content-Type; when that is absent or generic (`application/json`), from
/// the body's `mediaType`, and failing that from its shape (`manifests` means an OCI index, `config`
/// an OCI image manifest). Every failure is MANIFEST_INVALID (400); Docker schema 1 and other
/// types are refused. The body's size limit is the caller's (the push handler reads at most the
/// configured limit and answers 413 past it).
pub fn parse_manifest(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ParsedManifest, RegistryError> {
    let declared = match content_type.filter(|ct| !is_generic(ct)) {
        None => None,
        Some(ct) => {
            Some(ManifestMediaType::from_media_type(ct).ok_or_else(|| unsupported_type(ct))?)
        }
    };
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| {
        RegistryError::manifest_invalid(format!("manifest is not a valid JSON object: {e}"))
    })?;
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion", "must be 2"));
    }
    let in_body = match raw.media_type.as_deref() {
        None => None,
        Some(t) => Some(ManifestMediaType::from_media_type(t).ok_or_else(|| unsupported_type(t))?),
    };
    let media_type = match (declared, in_body) {
        (Some(d), Some(b)) if d != b => {
            return Err(invalid(
                "mediaType",
                format!(
                    "{} does not match the Content-Type {}",
                    b.as_str(),
                    d.as_str()
                ),
            ));
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) if raw.manifests.is_some() => ManifestMediaType::OciIndex,
        (None, None) if raw.config.is_some() => ManifestMediaType::OciManifest,
        (None, None) => {
            return Err(RegistryError::manifest_invalid(
                "cannot tell the manifest's type: send its media type as the Content-Type",
            ));
        }
    };

    let subject = raw.subject.map(|s| s.validate("subject")).transpose()?;
    let annotations = raw.annotations.unwrap_or_default();
    let artifact_type = raw.artifact_type.filter(|t| !t.is_empty());
    if media_type.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(invalid(
                "config/layers",
                "not allowed in an index or manifest list",
            ));
        }
        let manifests = raw
            .manifests
            .ok_or_else(|| invalid("manifests", "required in an index or manifest list"))?;
        Ok(ParsedManifest {
            media_type,
            config: None,
            layers: Vec::new(),
            manifests: validate_all(manifests, "manifests")?,
            subject,
            artifact_type,
            annotations,
        })
    } else {
        if raw.manifests.is_some() {
            return Err(invalid("manifests", "not allowed in an image manifest"));
        }
        let config = raw
            .config
            .ok_or_else(|| invalid("config", "required in an image manifest"))?
            .validate("config")?;
        let layers = raw
            .layers
            .ok_or_else(|| invalid("layers", "required in an image manifest"))?;
        Ok(ParsedManifest {
            media_type,
            artifact_type: artifact_type.or_else(|| Some(config.media_type.clone())),
            config: Some(config),
            layers: validate_all(layers, "layers")?,
            manifests: Vec::new(),
            subject,
            annotations,
        })
    }
}

fn unsupported_type(media_type: &str) -> RegistryError {
    let shown = media_type.get(..128).unwrap_or(media_type);
    let why = if media_type.contains("distribution.manifest.v1") {
        "Docker schema 1 manifests are not supported"
    } else {
        "unsupported manifest media type"
    };
    RegistryError::manifest_invalid(format!("{why}: {shown:?}"))
        .with_detail(serde_json::json!({ "mediaType": shown }))
}

/// The digest a manifest body is stored under. Pushed by digest, the body must hash to it with the
/// same algorithm (DIGEST_INVALID otherwise); pushed by tag, it is the body's sha256.
pub fn manifest_digest(reference: &Reference, body: &[u8]) -> Result<Digest, RegistryError> {
    match reference {
        Reference::Tag(_) => Ok(Digest::sha256(body)),
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), body);
            if &actual == expected {
                Ok(actual)
            } else {
                Err(RegistryError::from_store(
                    airlock_store::Error::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    },
                ))
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<&'a Descriptor>,
}

/// The body of a referrers response (end-12a): an OCI image index of `referrers`, in the order
/// given, keeping only those whose `artifactType` equals `artifact_type` when one is asked (end-12b;
/// the handler then sends `OCI-Filters-Applied: artifactType`). No referrers give an empty list.
pub fn referrers_index(
    referrers: &[Descriptor],
    artifact_type: Option<&str>,
) -> Result<Vec<u8>, RegistryError> {
    let manifests = referrers
        .iter()
        .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
        .collect();
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    })
    .map_err(RegistryError::internal)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::error::ErrorCode;

    const EMPTY: &str = "application/vnd.oci.empty.v1+json";

    fn d(n: u8) -> String {
        Digest::sha256(&[n]).to_string()
    }

    fn image(media_type_field: Option<&str>) -> String {
        let mt = media_type_field
            .map(|t| format!(r#""mediaType": "{t}","#))
            .unwrap_or_default();
        format!(
            r#"{{
              "schemaVersion": 2, {mt}
              "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "{}", "size": 7023}},
              "layers": [
                {{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "{}", "size": 32654}},
                {{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "{}", "size": 16724, "x-unknown": [1]}}
              ],
              "annotations": {{"com.example.key1": "value1"}},
              "somethingNew": {{"ignored": true}}
            }}"#,
            d(1),
            d(2),
            d(3)
        )
    }

    fn code(result: Result<ParsedManifest, RegistryError>) -> ErrorCode {
        result
            .expect_err("invalid manifest")
            .code()
            .expect("a spec code")
    }

    #[test]
    fn oci_image_manifest() {
        let m = parse_manifest(Some(OCI_MANIFEST), image(Some(OCI_MANIFEST)).as_bytes())
            .expect("valid");
        assert_eq!(m.media_type, ManifestMediaType::OciManifest);
        assert_eq!(m.config.as_ref().map(|c| c.size), Some(7023));
        assert_eq!(m.layers.len(), 2);
        assert!(m.manifests.is_empty());
        let blobs: Vec<String> = m.blobs().map(|b| b.digest.to_string()).collect();
        assert_eq!(blobs, [d(1), d(2), d(3)]);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(m.annotations["com.example.key1"], "value1");
        assert_eq!(m.subject, None);
        // Parameters and case of the Content-Type are ignored; the mediaType field is optional.
        let m = parse_manifest(
            Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"),
            image(None).as_bytes(),
        )
        .expect("valid");
        assert_eq!(m.media_type, ManifestMediaType::OciManifest);
    }

    #[test]
    fn docker_types() {
        let body = image(Some(DOCKER_MANIFEST));
        let m = parse_manifest(Some(DOCKER_MANIFEST), body.as_bytes()).expect("docker v2");
        assert_eq!(m.media_type, ManifestMediaType::DockerManifest);
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
                {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":528,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            d(9)
        );
        let m = parse_manifest(Some(DOCKER_MANIFEST_LIST), list.as_bytes()).expect("list");
        assert_eq!(m.media_type, ManifestMediaType::DockerManifestList);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.blobs().count(), 0);
        assert_eq!(m.artifact_type, None);
    }

    #[test]
    fn artifacts_and_subjects() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom.v1",
              "config":{{"mediaType":"{EMPTY}","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}},
              "layers":[{{"mediaType":"{EMPTY}","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}],
              "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7682}},
              "annotations":{{"org.opencontainers.image.created":"2022-01-01T14:42:55Z"}}}}"#,
            d(5)
        );
        let m = parse_manifest(Some(OCI_MANIFEST), body.as_bytes()).expect("artifact");
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.example.sbom.v1")
        );
        assert_eq!(m.subject.as_ref().map(|s| s.digest.to_string()), Some(d(5)));

        let own = Digest::sha256(body.as_bytes());
        let entry = m.referrer_descriptor(own.clone(), body.len() as u64);
        let index = referrers_index(std::slice::from_ref(&entry), None).expect("index");
        let json: serde_json::Value = serde_json::from_slice(&index).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{
                    "mediaType": OCI_MANIFEST,
                    "digest": own.to_string(),
                    "size": body.len(),
                    "artifactType": "application/vnd.example.sbom.v1",
                    "annotations": {"org.opencontainers.image.created": "2022-01-01T14:42:55Z"},
                }],
            })
        );

        // An index referrer without artifactType omits the field; the filter drops it.
        let idx_body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}}}"#,
            d(5)
        );
        let idx = parse_manifest(Some(OCI_INDEX), idx_body.as_bytes()).expect("index referrer");
        let idx_entry = idx.referrer_descriptor(Digest::sha256(idx_body.as_bytes()), 10);
        let all = referrers_index(&[entry.clone(), idx_entry.clone()], None).expect("all");
        let all: serde_json::Value = serde_json::from_slice(&all).expect("json");
        assert_eq!(all["manifests"].as_array().map(Vec::len), Some(2));
        assert!(all["manifests"][1].get("artifactType").is_none());
        assert!(all["manifests"][1].get("annotations").is_none());
        let some = referrers_index(&[entry, idx_entry], Some("application/vnd.example.sbom.v1"))
            .expect("filtered");
        let some: serde_json::Value = serde_json::from_slice(&some).expect("json");
        assert_eq!(some["manifests"].as_array().map(Vec::len), Some(1));
        let none = referrers_index(&[], Some("x/y")).expect("empty");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&none).expect("json"),
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        );
    }

    #[test]
    fn media_type_resolution() {
        // Generic or absent Content-Type: the body's mediaType, then the shape.
        for ct in [
            None,
            Some("application/json"),
            Some(""),
            Some("application/octet-stream"),
        ] {
            let m = parse_manifest(ct, image(Some(DOCKER_MANIFEST)).as_bytes()).expect("from body");
            assert_eq!(m.media_type, ManifestMediaType::DockerManifest);
            let m = parse_manifest(ct, image(None).as_bytes()).expect("from shape");
            assert_eq!(m.media_type, ManifestMediaType::OciManifest);
        }
        let m =
            parse_manifest(None, br#"{"schemaVersion":2,"manifests":[]}"#).expect("index shape");
        assert_eq!(m.media_type, ManifestMediaType::OciIndex);
        assert_eq!(
            code(parse_manifest(None, br#"{"schemaVersion":2}"#)),
            ErrorCode::ManifestInvalid
        );
        // Mismatch between header and body.
        assert_eq!(
            code(parse_manifest(
                Some(OCI_MANIFEST),
                image(Some(DOCKER_MANIFEST)).as_bytes()
            )),
            ErrorCode::ManifestInvalid
        );
        assert_eq!(
            code(parse_manifest(
                Some(OCI_INDEX),
                image(Some(OCI_MANIFEST)).as_bytes()
            )),
            ErrorCode::ManifestInvalid
        );
        for ct in [
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/vnd.oci.artifact.manifest.v1+json",
            "text/plain",
        ] {
            let err = parse_manifest(Some(ct), image(None).as_bytes()).expect_err(ct);
            assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid));
        }
    }

    #[test]
    fn refuses_invalid_manifests() {
        let ct = Some(OCI_MANIFEST);
        let image = image(Some(OCI_MANIFEST));
        let cases: Vec<String> = vec![
            String::new(),
            "not json".into(),
            "[]".into(),
            "{}".into(),
            image.replace(r#""schemaVersion": 2"#, r#""schemaVersion": 1"#),
            image.replace(r#""schemaVersion": 2"#, r#""schemaVersion": "2""#),
            image.replace("7023", "-1"),
            image.replace("7023", "1.5"),
            image.replace(&d(1), "sha256:baddigeststring"),
            image.replace(&d(1), "md5:d41d8cd98f00b204e9800998ecf8427e"),
            image.replace(r#""size": 7023"#, r#""sizes": 7023"#),
            image.replace(
                r#""mediaType": "application/vnd.oci.image.config.v1+json", "#,
                "",
            ),
            image.replace(r#""value1""#, "1"),
            image.replace(r#""layers""#, r#""manifests": [], "layers""#),
            image.replace(r#""layers""#, r#""layers": [], "layers""#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a/b","digest":"{}","size":1}}}}"#,
                d(1)
            ),
        ];
        for body in &cases {
            assert_eq!(
                code(parse_manifest(ct, body.as_bytes())),
                ErrorCode::ManifestInvalid,
                "{body}"
            );
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#
        );
        assert_eq!(
            code(parse_manifest(Some(OCI_INDEX), index.as_bytes())),
            ErrorCode::ManifestInvalid
        );
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#);
        assert_eq!(
            code(parse_manifest(Some(OCI_INDEX), index.as_bytes())),
            ErrorCode::ManifestInvalid
        );
    }

    #[test]
    fn digests_of_pushed_manifests() {
        let body = b"{}";
        let by_tag = Reference::Tag("v1".parse().expect("tag"));
        assert_eq!(
            manifest_digest(&by_tag, body).expect("sha256"),
            Digest::sha256(body)
        );
        let sha512 = Digest::of(airlock_store::Algorithm::Sha512, body);
        assert_eq!(
            manifest_digest(&Reference::Digest(sha512.clone()), body).expect("match"),
            sha512
        );
        let err = manifest_digest(&Reference::Digest(Digest::sha256(b"other")), body)
            .expect_err("mismatch");
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
    }

    #[test]
    fn non_distributable_layers() {
        let layer = |t: &str| Descriptor {
            media_type: t.into(),
            digest: Digest::sha256(b""),
            size: 0,
            artifact_type: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        };
        assert!(
            layer("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
                .is_non_distributable()
        );
        assert!(
            layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
                .is_non_distributable()
        );
        assert!(!layer("application/vnd.oci.image.layer.v1.tar+gzip").is_non_distributable());
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(body in prop::collection::vec(any::<u8>(), 0..512), ct in proptest::option::of("\\PC{0,60}")) {
            let _ = parse_manifest(ct.as_deref(), &body);
        }

        #[test]
        fn never_panics_on_manifest_shaped_json(
            schema in prop_oneof![Just("2".to_owned()), Just("-1".to_owned()), Just("null".to_owned()), "[0-9]{1,20}"],
            size in prop_oneof![Just("0".to_owned()), "-?[0-9]{1,25}", Just("\"1\"".to_owned())],
            digest in prop_oneof![Just(Digest::sha256(b"x").to_string()), "[a-z0-9]{0,8}:[a-f0-9]{0,70}"],
            field in prop::sample::select(vec!["config", "subject", "manifests", "layers"]),
            ct in prop::sample::select(vec![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, "application/json"]),
        ) {
            let desc = format!(r#"{{"mediaType":"a/b","digest":"{digest}","size":{size}}}"#);
            let value = if field == "manifests" || field == "layers" { format!("[{desc}]") } else { desc };
            let body = format!(r#"{{"schemaVersion":{schema},"{field}":{value},"layers":[]}}"#);
            if let Ok(m) = parse_manifest(Some(ct), body.as_bytes()) {
                prop_assert!(m.blobs().chain(&m.manifests).all(|d| d.size <= i64::MAX as u64));
            }
        }
    }
}
