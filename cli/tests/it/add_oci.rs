use std::path::Path;

use airlock_conformance::{Blob, Format, ImageBuilder, index_of, write_oci_layout};
use serde_json::json;

use crate::{
    common::{stderr, stdout},
    content::{add, ls, read_blob, repo_count, tag_digest, tar_dir, write},
};

/// A layout holding `blobs`, whose index.json lists `entries`.
fn write_layout(dir: &Path, blobs: &[&Blob], entries: Vec<serde_json::Value>) {
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    for b in blobs {
        let (alg, hex) = b.digest.split_once(':').unwrap();
        write(&dir.join("blobs").join(alg).join(hex), &b.bytes);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    write(&dir.join("index.json"), index.to_string().as_bytes());
}

fn named(b: &Blob, name: &str) -> serde_json::Value {
    let mut d = b.descriptor();
    d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    d
}

#[test]
fn layout_with_two_tags_into_one_repository_then_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let v1 = ImageBuilder::new().layers(2).layer_bytes(100_000).build();
    let v2 = ImageBuilder::new().format(Format::Docker).build();
    write_oci_layout(&layout, &[("v1", &v1), ("v2", &v2)]).unwrap();
    let src = format!("oci:{}", layout.display());
    let o = add(tmp.path(), &data, &["add", &src]);
    assert_eq!(o.status.code(), Some(2), "tags alone need --as");
    assert!(stderr(&o).contains("--as"), "{}", stderr(&o));

    let o = add(tmp.path(), &data, &["add", &src, "--as", "example.com/app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, "example.com/app", "v1").as_deref(),
        Some(v1.manifest.digest.as_str())
    );
    assert_eq!(
        tag_digest(&listed, "example.com/app", "v2").as_deref(),
        Some(v2.manifest.digest.as_str())
    );
    for b in v1
        .blobs()
        .chain(v2.blobs())
        .chain([&v1.manifest, &v2.manifest])
    {
        assert_eq!(
            read_blob(&data, &b.digest),
            b.bytes,
            "{} byte-exact",
            b.digest
        );
    }
    let o = add(tmp.path(), &data, &["add", &src, "--as", "example.com/app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("already present").count(),
        2,
        "{}",
        stdout(&o)
    );

    // One of them by name, with a tag of its own.
    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("{src}:v2"), "--as", "other/app:stable"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, "other/app", "stable").as_deref(),
        Some(v2.manifest.digest.as_str())
    );
}

#[test]
fn nested_multi_platform_index_kept_whole_under_its_full_reference_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let a = ImageBuilder::new().build();
    let b = ImageBuilder::new().layers(2).build();
    let inner = index_of(&[&a.manifest, &b.manifest], Format::Oci);
    let outer = index_of(&[&inner], Format::Oci);
    let mut blobs: Vec<&Blob> = a.blobs().chain(b.blobs()).collect();
    blobs.extend([&a.manifest, &b.manifest, &inner, &outer]);
    write_layout(
        &layout,
        &blobs,
        vec![named(&outer, "registry.example.com/team/tool:2.0")],
    );
    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("oci:{}", layout.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, "registry.example.com/team/tool", "2.0").as_deref(),
        Some(outer.digest.as_str())
    );
    for m in [&inner, &a.manifest, &b.manifest, &a.config, &b.layers[1]] {
        assert_eq!(read_blob(&data, &m.digest), m.bytes);
    }
}

#[test]
fn oci_archive_one_ref() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let v1 = ImageBuilder::new().build();
    let v2 = ImageBuilder::new().build();
    write_oci_layout(&layout, &[("v1", &v1), ("v2", &v2)]).unwrap();
    let archive = tmp.path().join("image.tar");
    write(&archive, &tar_dir(&layout));
    let src = format!("oci-archive:{}:v2", archive.display());
    let o = add(tmp.path(), &data, &["-q", "add", &src, "--as", "x/y"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "-q prints nothing");
    let listed = ls(tmp.path(), &data);
    assert_eq!(repo_count(&listed), 1);
    assert_eq!(
        tag_digest(&listed, "x/y", "v2").as_deref(),
        Some(v2.manifest.digest.as_str())
    );
    assert_eq!(tag_digest(&listed, "x/y", "v1"), None);
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            &format!("oci-archive:{}:v3", archive.display()),
            "--as",
            "x/y",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("v3"), "{}", stderr(&o));
}

/// A layout damaged by `damage`: exit 2, the error names `needle`, nothing tagged.
fn refused(damage: impl Fn(&Path, &airlock_conformance::Image), needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let image = ImageBuilder::new().layers(2).build();
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    damage(&layout, &image);
    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("oci:{}", layout.display()), "--as", "a/b"],
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "error names {needle:?}: {}",
        stderr(&o)
    );
    assert_eq!(repo_count(&ls(tmp.path(), &data)), 0, "nothing half-added");
}

fn blob_file(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn hostile_layouts() {
    // A missing layer.
    refused(
        |l, i| std::fs::remove_file(blob_file(l, &i.layers[1].digest)).unwrap(),
        "missing blob",
    );
    // A layer whose bytes differ from its digest (same size).
    refused(
        |l, i| {
            let p = blob_file(l, &i.layers[0].digest);
            let mut b = std::fs::read(&p).unwrap();
            b[10] ^= 1;
            std::fs::write(&p, b).unwrap();
        },
        "sha256:",
    );
    // A manifest that is not what its digest says.
    refused(
        |l, i| {
            let p = blob_file(l, &i.manifest.digest);
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() - 3;
            b[at] = b' ';
            std::fs::write(&p, b).unwrap();
        },
        "does not match",
    );
    // An index entry pointing nowhere.
    refused(
        |l, _| {
            let ghost = Blob::new("application/vnd.oci.image.manifest.v1+json", b"{}".to_vec());
            let index = json!({"schemaVersion": 2, "manifests": [named(&ghost, "v1")]});
            std::fs::write(l.join("index.json"), index.to_string()).unwrap();
        },
        "missing blob",
    );
    // A blob that is a symlink out of the layout.
    refused(
        |l, i| {
            let p = blob_file(l, &i.layers[0].digest);
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
        },
        "outside",
    );
}

#[test]
fn unnamed_referrers_in_the_layout_come_along() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let image = ImageBuilder::new().build();
    let sbom = ImageBuilder::new()
        .artifact_type("application/spdx+json")
        .config(Blob::new(
            "application/vnd.oci.empty.v1+json",
            b"{}".to_vec(),
        ))
        .subject(&image.manifest)
        .build();
    let mut blobs: Vec<&Blob> = image.blobs().chain(sbom.blobs()).collect();
    blobs.extend([&image.manifest, &sbom.manifest]);
    write_layout(
        &layout,
        &blobs,
        vec![named(&image.manifest, "v1"), sbom.manifest.descriptor()],
    );
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            &format!("oci:{}", layout.display()),
            "--as",
            "vendor/app",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let store = airlock_store::Store::open(
        &data,
        airlock_store::StoreOptions {
            access: airlock_store::Access::ReadOnly,
            ..Default::default()
        },
    )
    .unwrap();
    let refs = store
        .referrers("vendor/app", &image.manifest.digest.parse().unwrap())
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].0.to_string(), sbom.manifest.digest);
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_reported_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let image = ImageBuilder::new().layers(1).layer_bytes(50_000).build();
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    // Same size, other bytes: only reading the blob finds it.
    let layer = &image.layers[0];
    let (alg, hex) = layer.digest.split_once(':').unwrap();
    let path = layout.join("blobs").join(alg).join(hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let src = format!("oci:{}:v1", layout.display());
    let o = add(
        tmp.path(),
        &data,
        &["--json", "add", &src, "--as", "example.com/bad:1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(hex), "names the blob: {}", stderr(&o));
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = events
        .iter()
        .find(|e| e["event"] == "blob" && e["digest"] == layer.digest.as_str())
        .map(|e| e["status"].clone());
    assert_eq!(status, Some(json!("failed")), "{}", stdout(&o));
    assert!(
        tag_digest(&ls(tmp.path(), &data), "example.com/bad", "1").is_none(),
        "no tag moves"
    );
}
