use std::path::Path;

use airlock_ingest::{
    AddOptions, Committed, Error, NoProgress, Source, Untagged, plan_source, store_and_commit,
};
use airlock_oci::{OCI_INDEX, Target};
use airlock_store::Digest;

use crate::support::{Recorder, image_manifest, layout_blob, store};

/// A layout whose index.json names one index (two platforms) `v1`; returns the index bytes.
fn write_layout(dir: &Path) -> (Vec<u8>, Vec<Digest>) {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    let config = b"{\"architecture\":\"amd64\"}".to_vec();
    let layer_a = vec![7u8; 5000];
    let layer_b = vec![9u8; 3000];
    let c = layout_blob(dir, &config);
    let a = layout_blob(dir, &layer_a);
    let b = layout_blob(dir, &layer_b);
    let amd64 = image_manifest((&c, config.len()), &[(&a, layer_a.len())]);
    let arm64 = image_manifest((&c, config.len()), &[(&b, layer_b.len())]);
    let m1 = layout_blob(dir, &amd64);
    let m2 = layout_blob(dir, &arm64);
    // Spacing and key order a serializer would not produce: kept byte for byte.
    let index = format!(
        r#"{{ "schemaVersion": 2, "mediaType": "{OCI_INDEX}",
  "manifests": [
    {{"mediaType": "{}", "digest": "{m1}", "size": {}, "platform": {{"os": "linux", "architecture": "amd64"}}}},
    {{"mediaType": "{}", "digest": "{m2}", "size": {}, "platform": {{"os": "linux", "architecture": "arm64"}}}}
  ] }}"#,
        airlock_oci::OCI_MANIFEST,
        amd64.len(),
        airlock_oci::OCI_MANIFEST,
        arm64.len()
    )
    .into_bytes();
    let top = layout_blob(dir, &index);
    let index_json = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_INDEX, "digest": top.to_string(), "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index_json).expect("json"),
    )
    .expect("write");
    (index, vec![top, m1, m2, c, a, b])
}

#[test]
fn a_nested_index_is_added_whole_and_exactly_then_found_present() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).expect("mkdir");
    let (index, digests) = write_layout(&layout);
    let store = store(&tmp.path().join("store"));
    let source = Source::parse(&format!("oci:{}", layout.display()), None).expect("source");
    let target: Target = "example.com/app".parse().expect("target");
    let opts = AddOptions::default();
    let progress = Recorder::default();
    let plans =
        plan_source(&source, Some(&target), &opts, Untagged::Refuse, &progress).expect("plan");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].manifests.len(), 3, "the index and both platforms");
    let results = store_and_commit(&store, &plans, &opts, &progress).expect("commit");
    assert_eq!(results, [Committed::Added]);
    let tagged = store
        .tag("example.com/app", "v1")
        .expect("tag")
        .expect("tagged");
    assert_eq!(tagged, digests[0]);
    assert_eq!(
        store.read_blob(&tagged).expect("index"),
        index,
        "kept byte for byte"
    );
    for d in &digests {
        assert!(store.has_blob(d).expect("has"), "{d}");
    }
    let lines = progress.lines();
    assert_eq!(lines.first().map(String::as_str), Some("plan 3 8024"));
    assert!(
        lines.contains(&"image Added example.com/app v1".to_owned()),
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done 1 1 3"));

    // Again: every blob present, nothing changed.
    let progress = Recorder::default();
    let plans =
        plan_source(&source, Some(&target), &opts, Untagged::Refuse, &progress).expect("plan");
    let results = store_and_commit(&store, &plans, &opts, &progress).expect("commit");
    assert_eq!(results, [Committed::Present]);
    let lines = progress.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("present ")).count(),
        3
    );
    assert_eq!(lines.last().map(String::as_str), Some("done 1 0 0"));
}

#[test]
fn a_missing_blob_is_refused_before_anything_is_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).expect("mkdir");
    let (_, digests) = write_layout(&layout);
    let layer = &digests[5];
    std::fs::remove_file(layout.join("blobs/sha256").join(layer.hex())).expect("rm");
    let source = Source::parse(&format!("oci:{}", layout.display()), None).expect("source");
    let target: Target = "example.com/app".parse().expect("target");
    let err = plan_source(
        &source,
        Some(&target),
        &AddOptions::default(),
        Untagged::Refuse,
        &NoProgress,
    )
    .expect_err("missing layer");
    let chain = chain(&err);
    assert!(
        chain.contains("missing blob") && chain.contains(layer.hex()),
        "{chain}"
    );
}

#[test]
fn a_layout_image_named_by_a_tag_only_needs_a_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_layout(tmp.path());
    let source = Source::parse(&format!("oci:{}", tmp.path().display()), None).expect("source");
    let err = plan_source(
        &source,
        None,
        &AddOptions::default(),
        Untagged::Refuse,
        &NoProgress,
    )
    .expect_err("no repository");
    assert!(chain(&err).contains("--as REPO"), "{}", chain(&err));
    assert!(
        matches!(err, Error::Content { .. } | Error::In { .. }),
        "{err:?}"
    );
}

/// The error and its causes, as the CLI prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
