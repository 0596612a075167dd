use airlock_store::Digest;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{OCI_INDEX, OCI_MANIFEST, Registry, descriptor, image_manifest};

/// Follows `Link` headers from `uri`, collecting `field` of every page.
async fn collect_pages(r: &Registry, mut uri: String, field: &str) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let resp = r.get(&uri).await.expect(StatusCode::OK);
        pages += 1;
        let items = resp.json()[field].as_array().cloned().unwrap_or_default();
        all.extend(items.iter().map(|v| v.as_str().expect("text").to_owned()));
        if !resp.has("link") {
            break;
        }
        let link = resp.header("link");
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        uri = link[1..link.find('>').expect("<url>")].to_owned();
    }
    (all, pages)
}

#[tokio::test]
async fn end_8a_end_8b_tags_sorted_and_paginated() {
    let r = Registry::new();
    let config = b"{}";
    r.push_blob("org/app", config).await;
    let bytes = image_manifest(
        Some(OCI_MANIFEST),
        descriptor("application/vnd.oci.image.config.v1+json", config),
        vec![],
    );
    let tags = ["v2", "latest", "V1", "v10", "a_b", "v1", "1.0", "Z"];
    for tag in tags {
        r.put_manifest("org/app", tag, OCI_MANIFEST, &bytes)
            .await
            .expect(StatusCode::CREATED);
    }
    let mut sorted: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    sorted.sort();
    let resp = r.get("/v2/org/app/tags/list").await.expect(StatusCode::OK);
    assert_eq!(resp.json(), json!({"name": "org/app", "tags": sorted}));
    assert!(!resp.has("link"));
    assert_eq!(resp.header("content-type"), "application/json");

    let resp = r
        .get("/v2/org/app/tags/list?n=3")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.json()["tags"], json!(sorted[..3]));
    assert_eq!(
        resp.header("link"),
        format!(
            "</v2/org/app/tags/list?n=3&last={}>; rel=\"next\"",
            sorted[2]
        )
    );
    let resp = r
        .get(&format!("/v2/org/app/tags/list?n=2&last={}", sorted[5]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.json()["tags"], json!(sorted[6..8]));
    assert!(!resp.has("link"));
    let resp = r
        .get("/v2/org/app/tags/list?last=v1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.json()["tags"], json!(["v10", "v2"]));
    let resp = r
        .get("/v2/org/app/tags/list?n=0")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.json()["tags"], json!([]));
    assert!(!resp.has("link"));
    let (all, pages) = collect_pages(&r, "/v2/org/app/tags/list?n=3".into(), "tags").await;
    assert_eq!((all, pages), (sorted, 3));

    r.get("/v2/org/unknown/tags/list")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    r.get("/v2/org/app/tags/list?n=-1")
        .await
        .expect(StatusCode::BAD_REQUEST);
    // A repository with blobs but no tags lists none.
    r.push_blob("org/blobs-only", b"x").await;
    let resp = r
        .get("/v2/org/blobs-only/tags/list")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.json()["tags"], json!([]));
}

#[tokio::test]
async fn catalog_is_sorted_and_paginated() {
    let r = Registry::new();
    let names = ["b/app", "a", "a/b/c", "z-last", "m.n"];
    for name in names {
        r.push_blob(name, b"content").await;
    }
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    sorted.sort();
    let resp = r.get("/v2/_catalog").await.expect(StatusCode::OK);
    assert_eq!(resp.json(), json!({"repositories": sorted}));
    let resp = r.get("/v2/_catalog?n=2").await.expect(StatusCode::OK);
    assert_eq!(resp.json()["repositories"], json!(sorted[..2]));
    assert_eq!(
        resp.header("link"),
        format!("</v2/_catalog?n=2&last={}>; rel=\"next\"", sorted[1])
    );
    let (all, pages) = collect_pages(&r, "/v2/_catalog?n=2".into(), "repositories").await;
    assert_eq!((all, pages), (sorted, 3));
}

#[tokio::test]
async fn end_12a_end_12b_referrers_with_filter() {
    let r = Registry::new();
    let image = r.push_image("app", "v1", 1).await;
    let empty = b"{}";
    r.push_blob("app", empty).await;
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": image.digest.to_string(), "size": image.manifest.len()});
    let artifact = |artifact_type: &str, note: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [descriptor("application/vnd.oci.empty.v1+json", empty)],
            "subject": subject, "annotations": {"note": note},
        }))
        .expect("json")
    };
    let sbom = artifact("application/vnd.example.sbom.v1", "sbom");
    let sig = artifact("application/vnd.example.signature.v1", "sig");
    // An image manifest without artifactType lists its config type; an index lists none.
    let plain = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.config.v1+json", empty),
        "layers": [], "subject": subject,
    }))
    .expect("json");
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "subject": subject,
    }))
    .expect("json");
    for (bytes, media_type) in [
        (&sbom, OCI_MANIFEST),
        (&sig, OCI_MANIFEST),
        (&plain, OCI_MANIFEST),
        (&idx, OCI_INDEX),
    ] {
        let resp = r
            .put_manifest("app", &Digest::sha256(bytes).to_string(), media_type, bytes)
            .await
            .expect(StatusCode::CREATED);
        assert_eq!(resp.header("oci-subject"), image.digest.to_string());
    }

    let uri = format!("/v2/app/referrers/{}", image.digest);
    let resp = r.get(&uri).await.expect(StatusCode::OK);
    assert_eq!(resp.header("content-type"), OCI_INDEX);
    assert!(!resp.has("oci-filters-applied"));
    let body = resp.json();
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    let entries = body["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 4);
    let find = |bytes: &[u8]| -> Value {
        let d = Digest::sha256(bytes).to_string();
        entries
            .iter()
            .find(|e| e["digest"] == d)
            .cloned()
            .unwrap_or_else(|| panic!("{d} missing"))
    };
    assert_eq!(
        find(&sbom),
        json!({"mediaType": OCI_MANIFEST, "digest": Digest::sha256(&sbom).to_string(), "size": sbom.len(),
               "artifactType": "application/vnd.example.sbom.v1", "annotations": {"note": "sbom"}})
    );
    assert_eq!(
        find(&plain)["artifactType"],
        "application/vnd.example.config.v1+json"
    );
    assert!(find(&idx).get("artifactType").is_none());
    assert_eq!(find(&idx)["mediaType"], OCI_INDEX);

    let resp = r
        .get(&format!(
            "{uri}?artifactType=application/vnd.example.signature.v1"
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.header("oci-filters-applied"), "artifactType");
    let only = resp.json()["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["digest"], Digest::sha256(&sig).to_string());

    // Unknown subjects and repositories: an empty index, never 404.
    for uri in [
        format!("/v2/app/referrers/{}", Digest::sha256(b"nothing")),
        format!("/v2/no/such/repo/referrers/{}", image.digest),
    ] {
        let resp = r.get(&uri).await.expect(StatusCode::OK);
        assert_eq!(
            resp.json(),
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        );
    }
    r.get("/v2/app/referrers/sha256:bad")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}
