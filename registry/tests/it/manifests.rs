use airlock_registry::RegistryConfig;
use airlock_store::{Algorithm, Digest};
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Registry,
    descriptor, image_manifest, index,
};

/// Pulls `reference` and checks the bytes, the media type and the digest headers.
async fn assert_served(r: &Registry, repo: &str, reference: &str, bytes: &[u8], media_type: &str) {
    let uri = format!("/v2/{repo}/manifests/{reference}");
    let digest = Digest::sha256(bytes).to_string();
    let resp = r.get(&uri).await.expect(StatusCode::OK);
    assert_eq!(&resp.body[..], bytes, "{uri}");
    assert_eq!(resp.header("content-type"), media_type);
    assert_eq!(resp.header("docker-content-digest"), digest);
    assert_eq!(resp.header("content-length"), bytes.len().to_string());
    let resp = r.head(&uri).await.expect(StatusCode::OK);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("content-type"), media_type);
    assert_eq!(resp.header("docker-content-digest"), digest);
    assert_eq!(resp.header("content-length"), bytes.len().to_string());
}

#[tokio::test]
async fn end_3_end_7a_all_media_types_byte_exact() {
    let r = Registry::new();
    let config = br#"{"architecture":"arm64","os":"linux"}"#;
    let layer = b"a layer's bytes";
    r.push_blob("app", config).await;
    r.push_blob("app", layer).await;
    // Odd whitespace and key order, kept byte for byte.
    let oci = format!(
        "{{\n  \"schemaVersion\" : 2,\n\t\"mediaType\": \"{OCI_MANIFEST}\",\n  \"config\": {},\n  \"layers\": [ {} ] }}  ",
        descriptor(OCI_CONFIG, config),
        descriptor(OCI_LAYER, layer)
    )
    .into_bytes();
    let docker = image_manifest(
        Some(DOCKER_MANIFEST),
        descriptor("application/vnd.docker.container.image.v1+json", config),
        vec![descriptor(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            layer,
        )],
    );
    let cases = [
        ("oci", OCI_MANIFEST, oci.clone()),
        ("docker", DOCKER_MANIFEST, docker.clone()),
    ];
    for (tag, media_type, bytes) in &cases {
        let resp = r
            .put_manifest("app", tag, media_type, bytes)
            .await
            .expect(StatusCode::CREATED);
        let digest = Digest::sha256(bytes);
        assert_eq!(
            resp.header("location"),
            format!("/v2/app/manifests/{digest}")
        );
        assert_eq!(resp.header("docker-content-digest"), digest.to_string());
        assert!(!resp.has("oci-subject"));
        assert_served(&r, "app", tag, bytes, media_type).await;
        assert_served(&r, "app", &digest.to_string(), bytes, media_type).await;
    }
    let oci_index = index(
        OCI_INDEX,
        vec![
            json!({"mediaType": OCI_MANIFEST, "digest": Digest::sha256(&oci).to_string(), "size": oci.len(),
                    "platform": {"architecture": "arm64", "os": "linux"}}),
        ],
    );
    let docker_list = index(
        DOCKER_LIST,
        vec![
            json!({"mediaType": DOCKER_MANIFEST, "digest": Digest::sha256(&docker).to_string(), "size": docker.len(),
                    "platform": {"architecture": "arm64", "os": "linux"}}),
        ],
    );
    for (tag, media_type, bytes) in [
        ("oci-index", OCI_INDEX, oci_index),
        ("docker-list", DOCKER_LIST, docker_list),
    ] {
        r.put_manifest("app", tag, media_type, &bytes)
            .await
            .expect(StatusCode::CREATED);
        assert_served(&r, "app", tag, &bytes, media_type).await;
    }
}

#[tokio::test]
async fn end_7a_media_type_from_the_body_when_the_header_is_generic() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("app", config).await;
    let bytes = image_manifest(
        Some(DOCKER_MANIFEST),
        descriptor(OCI_CONFIG, config),
        vec![],
    );
    r.put_manifest("app", "v1", "application/json", &bytes)
        .await
        .expect(StatusCode::CREATED);
    assert_served(&r, "app", "v1", &bytes, DOCKER_MANIFEST).await;
    // A mediaType that contradicts the Content-Type is refused.
    r.put_manifest("app", "v2", OCI_MANIFEST, &bytes)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

#[tokio::test]
async fn end_7a_manifest_blob_unknown() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("app", config).await;
    let missing = b"never pushed";
    let bytes = image_manifest(
        Some(OCI_MANIFEST),
        descriptor(OCI_CONFIG, config),
        vec![descriptor(OCI_LAYER, missing)],
    );
    let resp = r
        .put_manifest("app", "v1", OCI_MANIFEST, &bytes)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        resp.json()["errors"][0]["detail"]["digest"],
        Digest::sha256(missing).to_string()
    );
    r.get("/v2/app/manifests/v1")
        .await
        .expect(StatusCode::NOT_FOUND);
    // Stored for another repository is not enough.
    r.push_blob("other", missing).await;
    r.put_manifest("app", "v1", OCI_MANIFEST, &bytes)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    // A non-distributable layer need not be held.
    let foreign = image_manifest(
        Some(OCI_MANIFEST),
        descriptor(OCI_CONFIG, config),
        vec![descriptor(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            missing,
        )],
    );
    r.put_manifest("app", "foreign", OCI_MANIFEST, &foreign)
        .await
        .expect(StatusCode::CREATED);
    // An index whose child is unknown, or is a blob rather than a manifest.
    let unknown_child = index(
        OCI_INDEX,
        vec![descriptor(OCI_MANIFEST, b"no such manifest")],
    );
    r.put_manifest("app", "idx", OCI_INDEX, &unknown_child)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    let blob_child = index(OCI_INDEX, vec![descriptor(OCI_MANIFEST, config)]);
    r.put_manifest("app", "idx", OCI_INDEX, &blob_child)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    // Its children pushed first, the index is accepted.
    let child = Digest::sha256(&foreign);
    let good = index(
        OCI_INDEX,
        vec![
            json!({"mediaType": OCI_MANIFEST, "digest": child.to_string(), "size": foreign.len()}),
        ],
    );
    r.put_manifest("app", "idx", OCI_INDEX, &good)
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn end_7a_invalid_manifests() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("app", config).await;
    let good = image_manifest(Some(OCI_MANIFEST), descriptor(OCI_CONFIG, config), vec![]);
    for (content_type, body) in [
        (OCI_MANIFEST, b"not json".to_vec()),
        (
            OCI_MANIFEST,
            b"{\"schemaVersion\": 2, \"config\": ".to_vec(),
        ),
        (OCI_MANIFEST, b"[]".to_vec()),
        (OCI_MANIFEST, b"".to_vec()),
        (OCI_MANIFEST, vec![0xff, 0xfe, 0x00]),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            good.clone(),
        ),
        (OCI_INDEX, good.clone()),
    ] {
        r.put_manifest("app", "v1", content_type, &body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    }
    // Pushed by a digest it does not have.
    r.put_manifest(
        "app",
        &Digest::sha256(b"other").to_string(),
        OCI_MANIFEST,
        &good,
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    // By its sha512 digest: stored under that.
    let sha512 = Digest::of(Algorithm::Sha512, &good);
    r.put_manifest("app", &sha512.to_string(), OCI_MANIFEST, &good)
        .await
        .expect(StatusCode::CREATED);
    let resp = r
        .get(&format!("/v2/app/manifests/{sha512}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.header("docker-content-digest"), sha512.to_string());
    // A bad tag.
    r.put_manifest("app", "-bad", OCI_MANIFEST, &good)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
}

#[tokio::test]
async fn end_7a_size_limit() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("app", config).await;
    // A manifest of exactly 4 MiB (padded by an annotation) is accepted.
    let limit = 4 * 1024 * 1024;
    let mut m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": descriptor(OCI_CONFIG, config), "layers": [],
                       "annotations": {"pad": ""}});
    let base = serde_json::to_vec(&m).expect("json").len();
    m["annotations"]["pad"] = json!("x".repeat(limit - base));
    let exact = serde_json::to_vec(&m).expect("json");
    assert_eq!(exact.len(), limit);
    r.put_manifest("app", "big", OCI_MANIFEST, &exact)
        .await
        .expect(StatusCode::CREATED);
    assert_served(&r, "app", "big", &exact, OCI_MANIFEST).await;
    // One byte more is 413, declared or not.
    m["annotations"]["pad"] = json!("x".repeat(limit - base + 1));
    let over = serde_json::to_vec(&m).expect("json");
    r.put_manifest("app", "bigger", OCI_MANIFEST, &over)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID");
    r.call(
        Method::PUT,
        "/v2/app/manifests/bigger",
        &[("content-type", OCI_MANIFEST)],
        over.clone(),
    )
    .await
    .expect(StatusCode::PAYLOAD_TOO_LARGE);
    // A smaller configured limit.
    let small = Registry::with_config(RegistryConfig {
        max_manifest_bytes: 100,
        ..RegistryConfig::default()
    });
    small.push_blob("app", config).await;
    small
        .put_manifest("app", "v1", OCI_MANIFEST, &exact[..])
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn end_7b_push_by_digest_with_tags() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("app", config).await;
    let bytes = image_manifest(Some(OCI_MANIFEST), descriptor(OCI_CONFIG, config), vec![]);
    let digest = Digest::sha256(&bytes);
    let resp = r
        .put_manifest(
            "app",
            &format!("{digest}?tag=1.2.3&tag=1.2&tag=latest"),
            OCI_MANIFEST,
            &bytes,
        )
        .await
        .expect(StatusCode::CREATED);
    let tags: Vec<&str> = resp
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(tags, ["1.2.3", "1.2", "latest"]);
    for tag in tags {
        assert_served(&r, "app", tag, &bytes, OCI_MANIFEST).await;
    }
    // Pushed by digest alone: no tag.
    let list = r.get("/v2/app/tags/list").await.expect(StatusCode::OK);
    assert_eq!(list.json()["tags"], json!(["1.2", "1.2.3", "latest"]));
}

#[tokio::test]
async fn end_7a_subject_is_accepted_before_its_manifest() {
    let r = Registry::new();
    let empty = b"{}";
    r.push_blob("app", empty).await;
    let subject = image_manifest(Some(OCI_MANIFEST), descriptor(OCI_CONFIG, empty), vec![]);
    let subject_digest = Digest::sha256(&subject);
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor("application/vnd.oci.empty.v1+json", empty)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest.to_string(), "size": subject.len()},
    }))
    .expect("json");
    let sbom_digest = Digest::sha256(&sbom);
    let resp = r
        .put_manifest("app", &sbom_digest.to_string(), OCI_MANIFEST, &sbom)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(resp.header("oci-subject"), subject_digest.to_string());
    // Listed before the subject exists, and after.
    let list = r
        .get(&format!("/v2/app/referrers/{subject_digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        list.json()["manifests"][0]["digest"],
        sbom_digest.to_string()
    );
    r.put_manifest("app", "v1", OCI_MANIFEST, &subject)
        .await
        .expect(StatusCode::CREATED);
    let list = r
        .get(&format!("/v2/app/referrers/{subject_digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.json()["manifests"].as_array().map(Vec::len), Some(1));
}
