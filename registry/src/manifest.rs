//! What the registry adds to OCI's manifests (`airlock_oci`): the digest a pushed manifest is
//! stored under, the referrers response (end-12a, end-12b), and the bridge between the digests
//! OCI parses at the edge and the store's.

use airlock_oci::{Descriptor, OCI_INDEX, Reference};
use airlock_store::Digest;
use serde::Serialize;

use crate::error::RegistryError;

/// The store's digest for one OCI parsed at the edge. Both apply the same rules, so this fails
/// only if they ever drift apart, and then as DIGEST_INVALID.
pub(crate) fn store_digest(digest: &airlock_oci::Digest) -> Result<Digest, RegistryError> {
    digest.as_str().parse().map_err(RegistryError::from_store)
}

/// The OCI digest for one the store computed (see [`store_digest`]).
pub(crate) fn oci_digest(digest: &Digest) -> Result<airlock_oci::Digest, RegistryError> {
    digest.to_string().parse().map_err(RegistryError::from_oci)
}

/// The digest a manifest body is stored under. Pushed by digest, the body must hash to it with the
/// same algorithm (DIGEST_INVALID otherwise); pushed by tag, it is the body's sha256.
pub fn manifest_digest(reference: &Reference, body: &[u8]) -> Result<Digest, RegistryError> {
    match reference {
        Reference::Tag(_) => Ok(Digest::sha256(body)),
        Reference::Digest(expected) => {
            let expected = store_digest(expected)?;
            let actual = Digest::of(expected.algorithm(), body);
            if actual == expected {
                Ok(actual)
            } else {
                Err(RegistryError::from_store(
                    airlock_store::Error::DigestMismatch { expected, actual },
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
    use airlock_oci::{OCI_MANIFEST, parse_manifest};

    use super::*;
    use crate::error::ErrorCode;

    fn oci(d: &Digest) -> airlock_oci::Digest {
        oci_digest(d).expect("same rules")
    }

    #[test]
    fn referrers_lists() {
        let subject = Digest::sha256(b"subject");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom.v1",
              "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},
              "layers":[],
              "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":7682}},
              "annotations":{{"org.opencontainers.image.created":"2022-01-01T14:42:55Z"}}}}"#
        );
        let m = parse_manifest(Some(OCI_MANIFEST), body.as_bytes()).expect("artifact");
        let own = Digest::sha256(body.as_bytes());
        let entry = m.referrer_descriptor(oci(&own), body.len() as u64);
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
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}}}}"#
        );
        let idx = parse_manifest(Some(OCI_INDEX), idx_body.as_bytes()).expect("index referrer");
        let idx_entry = idx.referrer_descriptor(oci(&Digest::sha256(idx_body.as_bytes())), 10);
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
    fn digests_of_pushed_manifests() {
        let body = b"{}";
        let by_tag = Reference::Tag("v1".parse().expect("tag"));
        assert_eq!(
            manifest_digest(&by_tag, body).expect("sha256"),
            Digest::sha256(body)
        );
        let sha512 = Digest::of(airlock_store::Algorithm::Sha512, body);
        assert_eq!(
            manifest_digest(&Reference::Digest(oci(&sha512)), body).expect("match"),
            sha512
        );
        let err = manifest_digest(&Reference::Digest(oci(&Digest::sha256(b"other"))), body)
            .expect_err("mismatch");
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
    }

    #[test]
    fn digests_cross_the_bridge_unchanged() {
        for d in [
            Digest::sha256(b"x"),
            Digest::of(airlock_store::Algorithm::Sha512, b"x"),
        ] {
            assert_eq!(store_digest(&oci(&d)).expect("back"), d);
        }
    }
}
