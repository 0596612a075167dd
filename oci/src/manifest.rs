//! Manifests and indexes as airlock reads them: which media types are accepted, how a body is
//! checked, and what it references. Bodies are always kept byte for byte by the caller; parsing
//! only reads fields.
//!
//! Accepted: OCI image manifests and indexes (artifacts included: `artifactType`, `subject`),
//! Docker schema 2 manifests and manifest lists. A body must be a JSON object with
//! `schemaVersion` 2; a `mediaType` field, when present, must equal the type the manifest is
//! declared as (checking it closes the "ambiguous manifest" hole, CVE-2021-41190), and fields of
//! the other kind (`manifests` in an image manifest, `config` or `layers` in an index) are
//! refused for the same reason. Every descriptor needs a `mediaType`, a sha256 or sha512 `digest`
//! and a non-negative `size`; unknown fields and media types are kept as they are, as the image
//! spec requires.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    digest::Digest,
    error::Error,
    media_type::{ManifestMediaType, essence},
    platform::Platform,
};

/// Default largest manifest body accepted (the distribution spec: registries should accept at
/// least 4 MB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

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
    /// What an index entry runs on, when it says (an `os` and `architecture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
            platform: None,
        }
    }

    /// Whether the content is a non-distributable ("foreign") layer, which a registry need not
    /// hold: a manifest may reference it without it being stored.
    pub fn is_non_distributable(&self) -> bool {
        let t = self.media_type.as_str();
        t.contains(".nondistributable.") || t.contains(".foreign.")
    }

    /// Whether it names a manifest or index airlock keeps as such (its media type, exactly).
    pub fn is_manifest(&self) -> bool {
        ManifestMediaType::from_exact(&self.media_type).is_some()
    }
}

/// What a valid manifest says: its kind and the descriptors it holds.
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
    /// The manifest this one refers to (an artifact's `subject`); it need not exist.
    pub subject: Option<Descriptor>,
    /// The type for a referrers list: `artifactType`, else an image manifest's
    /// `config.mediaType`; `None` for an index without one.
    pub artifact_type: Option<String>,
    /// The manifest's own annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// The blobs the manifest needs: config, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers)
    }

    /// Everything the manifest references (blobs and child manifests, not its subject), sorted,
    /// each once: the edges a store records for it.
    pub fn children(&self) -> Vec<Digest> {
        let mut children: Vec<Digest> = self
            .blobs()
            .chain(&self.manifests)
            .map(|d| d.digest.clone())
            .collect();
        children.sort();
        children.dedup();
        children
    }

    /// This manifest's entry in its subject's referrers list, given its own digest and size.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
            ..Descriptor::new(self.media_type.as_str(), digest, size)
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
    platform: Option<serde_json::Value>,
}

fn invalid(field: &str, why: impl Into<String>) -> Error {
    Error::ManifestField {
        field: field.to_owned(),
        why: why.into(),
    }
}

impl RawDescriptor {
    fn validate(self, field: &str) -> Result<Descriptor, Error> {
        let media_type = self
            .media_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(field, "descriptor has no mediaType"))?;
        let text = self
            .digest
            .ok_or_else(|| invalid(field, "descriptor has no digest"))?;
        let digest = text
            .parse::<Digest>()
            .map_err(|e| Error::DescriptorDigest {
                field: format!("{field}.digest"),
                why: e.to_string(),
                text,
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
            platform: self.platform.as_ref().and_then(Platform::from_json),
        })
    }
}

fn validate_all(raw: Vec<RawDescriptor>, field: &str) -> Result<Vec<Descriptor>, Error> {
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| d.validate(&format!("{field}[{i}]")))
        .collect()
}

/// Media types that say nothing about the manifest kind; the body's `mediaType` decides.
fn is_generic(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence.is_empty()
        || ["application/json", "application/octet-stream", "*/*"]
            .iter()
            .any(|g| g.eq_ignore_ascii_case(essence))
}

fn supported(media_type: &str) -> Result<ManifestMediaType, Error> {
    ManifestMediaType::from_media_type(media_type).ok_or_else(|| Error::UnsupportedMediaType {
        media_type: media_type.to_owned(),
    })
}

/// Checks a manifest body `declared` as some media type (a `Content-Type`, a descriptor's
/// `mediaType`) and says what it references.
///
/// The kind comes from `declared`; when that is absent or generic (`application/json`), from the
/// body's `mediaType`, and failing that from its shape (`manifests` means an OCI index, `config`
/// an OCI image manifest). Docker schema 1 and other types are refused. The body's size limit is
/// the caller's.
pub fn parse_manifest(declared: Option<&str>, body: &[u8]) -> Result<ParsedManifest, Error> {
    let declared = declared
        .filter(|t| !is_generic(t))
        .map(supported)
        .transpose()?;
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|e| Error::ManifestNotJson { why: e.to_string() })?;
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion", "must be 2"));
    }
    let in_body = raw.media_type.as_deref().map(supported).transpose()?;
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
        (None, None) => return Err(Error::UnknownManifestKind),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

    const EMPTY: &str = "application/vnd.oci.empty.v1+json";

    /// A digest made of one repeated hex digit.
    fn d(n: u8) -> String {
        format!(
            "sha256:{}",
            char::from(b"0123456789abcdef"[usize::from(n % 16)])
                .to_string()
                .repeat(64)
        )
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
            m.children()
                .iter()
                .map(Digest::to_string)
                .collect::<Vec<_>>(),
            [d(1), d(2), d(3)]
        );
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(m.annotations["com.example.key1"], "value1");
        assert_eq!(m.subject, None);
        // Parameters and case of the declared type are ignored; the mediaType field is optional.
        let m = parse_manifest(
            Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"),
            image(None).as_bytes(),
        )
        .expect("valid");
        assert_eq!(m.media_type, ManifestMediaType::OciManifest);
    }

    #[test]
    fn docker_types_and_platforms() {
        let body = image(Some(DOCKER_MANIFEST));
        let m = parse_manifest(Some(DOCKER_MANIFEST), body.as_bytes()).expect("docker v2");
        assert_eq!(m.media_type, ManifestMediaType::DockerManifest);
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
                {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":528,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
                {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":528,"platform":{{"os":7}}}},
                {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":528}}]}}"#,
            d(9),
            d(8),
            d(9)
        );
        let m = parse_manifest(Some(DOCKER_MANIFEST_LIST), list.as_bytes()).expect("list");
        assert_eq!(m.media_type, ManifestMediaType::DockerManifestList);
        assert_eq!(m.manifests.len(), 3);
        assert!(m.manifests.iter().all(Descriptor::is_manifest));
        let platforms: Vec<Option<String>> = m
            .manifests
            .iter()
            .map(|e| e.platform.as_ref().map(Platform::to_string))
            .collect();
        assert_eq!(platforms, [Some("linux/arm64/v8".to_owned()), None, None]);
        assert_eq!(m.children().len(), 2, "children are listed once");
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
        assert_eq!(m.children().len(), 1, "the subject is not a child");
        let own: Digest = d(6).parse().expect("digest");
        let entry = m.referrer_descriptor(own.clone(), body.len() as u64);
        assert_eq!(
            serde_json::to_value(&entry).expect("json"),
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": own.to_string(),
                "size": body.len(),
                "artifactType": "application/vnd.example.sbom.v1",
                "annotations": {"org.opencontainers.image.created": "2022-01-01T14:42:55Z"},
            })
        );
        let back: Descriptor =
            serde_json::from_slice(&serde_json::to_vec(&entry).expect("ser")).expect("de");
        assert_eq!(back, entry);
    }

    #[test]
    fn media_type_resolution() {
        // Generic or absent declared type: the body's mediaType, then the shape.
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
            parse_manifest(None, br#"{"schemaVersion":2}"#),
            Err(Error::UnknownManifestKind)
        );
        // Mismatch between declared type and body.
        for (declared, body) in [(OCI_MANIFEST, DOCKER_MANIFEST), (OCI_INDEX, OCI_MANIFEST)] {
            let e = parse_manifest(Some(declared), image(Some(body)).as_bytes()).expect_err(body);
            assert!(
                matches!(e, Error::ManifestField { ref field, .. } if field == "mediaType"),
                "{e}"
            );
        }
        for ct in [
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/vnd.oci.artifact.manifest.v1+json",
            "text/plain",
        ] {
            let e = parse_manifest(Some(ct), image(None).as_bytes()).expect_err(ct);
            assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e}");
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
            assert!(parse_manifest(ct, body.as_bytes()).is_err(), "{body}");
        }
        let e =
            parse_manifest(ct, image.replace(&d(1), "sha256:zz").as_bytes()).expect_err("digest");
        assert_eq!(
            e,
            Error::DescriptorDigest {
                field: "config.digest".into(),
                text: "sha256:zz".into(),
                why: "invalid digest \"sha256:zz\"".into(),
            }
        );
        for index in [
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#
            ),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
        ] {
            assert!(
                parse_manifest(Some(OCI_INDEX), index.as_bytes()).is_err(),
                "{index}"
            );
        }
    }

    #[test]
    fn non_distributable_layers() {
        let layer = |t: &str| Descriptor::new(t, d(0).parse().expect("digest"), 0);
        assert!(
            layer("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
                .is_non_distributable()
        );
        assert!(
            layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
                .is_non_distributable()
        );
        assert!(!layer("application/vnd.oci.image.layer.v1.tar+gzip").is_non_distributable());
        assert!(!layer("application/vnd.oci.image.layer.v1.tar+gzip").is_manifest());
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
            digest in prop_oneof![Just(d(7)), "[a-z0-9]{0,8}:[a-f0-9]{0,70}"],
            platform in prop_oneof![Just("null".to_owned()), Just(r#"{"os":"linux","architecture":"amd64"}"#.to_owned()), "\\{\"os\":[0-9]{1,3}\\}"],
            field in prop::sample::select(vec!["config", "subject", "manifests", "layers"]),
            ct in prop::sample::select(vec![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, "application/json"]),
        ) {
            let desc = format!(r#"{{"mediaType":"a/b","digest":"{digest}","size":{size},"platform":{platform}}}"#);
            let value = if field == "manifests" || field == "layers" { format!("[{desc}]") } else { desc };
            let body = format!(r#"{{"schemaVersion":{schema},"{field}":{value},"layers":[]}}"#);
            if let Ok(m) = parse_manifest(Some(ct), body.as_bytes()) {
                prop_assert!(m.blobs().chain(&m.manifests).all(|d| d.size <= i64::MAX as u64));
            }
        }
    }
}
