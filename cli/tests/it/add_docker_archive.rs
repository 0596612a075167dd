use std::path::Path;

use crate::{
    common::{stderr, stdout},
    content::{
        DockerImage, Entry, add, hex_of, layer, legacy_entries, ls, oci_style_entries, read_blob,
        repo_count, sha256, tag_digest, tar_of, write,
    },
};

fn check_manifest(data: &Path, digest: &str, image: &DockerImage, media_type: &str) {
    let manifest = read_blob(data, digest);
    assert_eq!(sha256(&manifest), digest);
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    assert_eq!(m["mediaType"], media_type);
    assert_eq!(m["config"]["digest"], image.config_digest());
    assert_eq!(read_blob(data, &image.config_digest()), image.config);
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), image.layers.len());
    for (d, l) in layers.iter().zip(&image.layers) {
        assert_eq!(d["digest"], sha256(l), "a layer's digest is its diff id");
        assert_eq!(d["size"], l.len());
        assert_eq!(read_blob(data, &sha256(l)), *l);
    }
}

#[test]
fn legacy_archive_with_two_images_and_a_shared_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let a = DockerImage::new(1, 2);
    let mut b = DockerImage::new(2, 1);
    // b shares a's first layer: written once, then as a symlink.
    b.layers.insert(0, a.layers[0].clone());
    let diff_ids: Vec<String> = b.layers.iter().map(|l| sha256(l)).collect();
    b.config = serde_json::json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": diff_ids}})
        .to_string()
        .into_bytes();
    let archive = tmp.path().join("save.tar");
    write(
        &archive,
        &tar_of(&legacy_entries(&[
            (&["nginx:1.27"], &a),
            (
                &["example.com/team/app:v1", "example.com/team/app:latest"],
                &b,
            ),
        ])),
    );
    let src = format!("docker-archive:{}", archive.display());
    let o = add(tmp.path(), &data, &["add", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("added: docker.io/library/nginx:1.27"), "{out}");
    let listed = ls(tmp.path(), &data);
    let nginx = tag_digest(&listed, "docker.io/library/nginx", "1.27").expect("nginx tagged");
    let app = tag_digest(&listed, "example.com/team/app", "v1").expect("app tagged");
    assert_eq!(
        tag_digest(&listed, "example.com/team/app", "latest").as_ref(),
        Some(&app)
    );
    assert!(
        out.contains(&nginx) && out.contains(&app),
        "digests reported: {out}"
    );
    check_manifest(
        &data,
        &nginx,
        &a,
        "application/vnd.oci.image.manifest.v1+json",
    );
    check_manifest(
        &data,
        &app,
        &b,
        "application/vnd.oci.image.manifest.v1+json",
    );

    // Again: nothing changes, and it says so.
    let o = add(tmp.path(), &data, &["add", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("already present").count(),
        2,
        "{}",
        stdout(&o)
    );
    let o = add(tmp.path(), &data, &["--json", "add", &src]);
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "image")
            .all(|e| e["status"] == "present")
    );
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "blob")
            .all(|e| e["status"] == "present")
    );
    let o = add(tmp.path(), &data, &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn oci_style_archive_as_docker_schema_2_under_another_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let a = DockerImage::new(3, 3);
    let archive = tmp.path().join("save.tar");
    write(
        &archive,
        &tar_of(&oci_style_entries(&[(&["busybox:1"], &a)])),
    );
    let src = format!("docker-archive:{}", archive.display());
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            &src,
            "--format",
            "docker",
            "--as",
            "vendor/busybox:stable",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(repo_count(&listed), 1, "{listed}");
    let d = tag_digest(&listed, "vendor/busybox", "stable").expect("tagged");
    check_manifest(
        &data,
        &d,
        &a,
        "application/vnd.docker.distribution.manifest.v2+json",
    );
}

/// `--compress gzip`: layers gzip'd by airlock's deterministic encoding, the manifest naming the
/// gzip digests, the config's diff ids unchanged; the same archive gives the same digests again,
/// and the store keeps the layers as chunks of their tar (rebuilt exactly on read).
#[test]
fn issue_4_compress_gzip_is_deterministic_and_rebuilt() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let a = DockerImage::new(7, 2);
    let archive = tmp.path().join("save.tar");
    write(&archive, &tar_of(&legacy_entries(&[(&["app:1"], &a)])));
    let src = format!("docker-archive:{}", archive.display());
    let mut digests = Vec::new();
    for run in ["one", "two"] {
        let data = tmp.path().join(run);
        let o = add(tmp.path(), &data, &["add", &src, "--compress", "gzip"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let listed = ls(tmp.path(), &data);
        let d = tag_digest(&listed, "docker.io/library/app", "1").expect("tagged");
        let manifest = read_blob(&data, &d);
        let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
        assert_eq!(
            m["config"]["digest"],
            a.config_digest(),
            "config kept as is"
        );
        let layers = m["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), a.layers.len());
        for (desc, plain) in layers.iter().zip(&a.layers) {
            assert_eq!(
                desc["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            let digest = desc["digest"].as_str().expect("digest");
            let gz = read_blob(&data, digest);
            assert_eq!(sha256(&gz), digest);
            assert_eq!(desc["size"], gz.len());
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, plain, "the gzip layer holds the diff id's tar");
        }
        let o = crate::common::airlock(
            tmp.path(),
            &["--data", data.to_str().unwrap(), "--json", "du"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let du = stdout(&o);
        assert!(du.contains("rebuil"), "{du}");
        let o = crate::common::airlock(tmp.path(), &["--data", data.to_str().unwrap(), "verify"]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        digests.push(d);
    }
    assert_eq!(digests[0], digests[1], "the encoding is deterministic");
}

/// Adds a hostile archive: exit 2, the error names `needle`, and no repository appears.
fn refused(entries: Vec<(String, Entry)>, needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let archive = tmp.path().join("evil.tar");
    write(&archive, &tar_of(&entries));
    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("docker-archive:{}", archive.display())],
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "error names {needle:?}: {}",
        stderr(&o)
    );
    assert_eq!(repo_count(&ls(tmp.path(), &data)), 0, "nothing half-added");
}

fn good() -> (DockerImage, Vec<(String, Entry)>) {
    let image = DockerImage::new(7, 2);
    let entries = legacy_entries(&[(&["evil:1"], &image)]);
    (image, entries)
}

fn layer_path(entries: &[(String, Entry)]) -> String {
    entries
        .iter()
        .find(|(n, _)| n.ends_with("/layer.tar"))
        .map(|(n, _)| n.clone())
        .expect("a layer")
}

#[test]
fn hostile_path_traversal() {
    let (_, mut entries) = good();
    entries.insert(0, ("../../etc/evil".into(), Entry::File(b"x".to_vec())));
    refused(entries, "../../etc/evil");
    let (_, mut entries) = good();
    entries.insert(0, ("/etc/evil".into(), Entry::File(b"x".to_vec())));
    refused(entries, "/etc/evil");
}

#[test]
fn hostile_symlink_escaping() {
    let (_, mut entries) = good();
    let path = layer_path(&entries);
    for e in entries.iter_mut().filter(|(n, _)| *n == path) {
        e.1 = Entry::Symlink("../../../etc/passwd".into());
    }
    refused(entries, &path);
    let (_, mut entries) = good();
    entries.push(("link".into(), Entry::Symlink("/etc/passwd".into())));
    refused(entries, "link");
    let (_, mut entries) = good();
    entries.push(("hard".into(), Entry::Hardlink("../outside".into())));
    refused(entries, "hard");
}

#[test]
fn hostile_duplicated_entry() {
    let (_, mut entries) = good();
    let path = layer_path(&entries);
    entries.push((path.clone(), Entry::File(layer(99, 3000))));
    refused(entries, "duplicated");
    let (_, mut entries) = good();
    entries.push(("manifest.json".into(), Entry::File(b"[]".to_vec())));
    refused(entries, "manifest.json");
}

#[test]
fn hostile_missing_layer_and_config() {
    let (_, entries) = good();
    let path = layer_path(&entries);
    let without: Vec<_> = entries.into_iter().filter(|(n, _)| *n != path).collect();
    refused(without, &path);
    let (image, entries) = good();
    let config = format!("{}.json", hex_of(&image.config));
    let without: Vec<_> = entries.into_iter().filter(|(n, _)| *n != config).collect();
    refused(without, &config);
}

#[test]
fn hostile_digests_that_do_not_match() {
    // A layer whose bytes are not its diff id: found while storing, nothing tagged.
    let (_, mut entries) = good();
    let path = layer_path(&entries);
    for e in entries.iter_mut().filter(|(n, _)| *n == path) {
        e.1 = Entry::File(layer(1234, 3000));
    }
    refused(entries, &path);
    // A config whose name is not its digest.
    let (image, mut entries) = good();
    let config = format!("{}.json", hex_of(&image.config));
    for e in entries.iter_mut().filter(|(n, _)| *n == config) {
        e.1 = Entry::File(image.config.iter().rev().copied().collect());
    }
    refused(entries, &config);
}

#[test]
fn hostile_manifest_json() {
    let (_, mut entries) = good();
    for e in entries.iter_mut().filter(|(n, _)| n == "manifest.json") {
        let mut huge = b"[".to_vec();
        huge.extend(std::iter::repeat_n(b' ', 9 * 1024 * 1024));
        huge.push(b']');
        e.1 = Entry::File(huge);
    }
    refused(entries, "manifest.json");
    let (_, mut entries) = good();
    for e in entries.iter_mut().filter(|(n, _)| n == "manifest.json") {
        e.1 =
            Entry::File(br#"[{"Config":"nowhere.json","RepoTags":["a:1"],"Layers":[]}]"#.to_vec());
    }
    refused(entries, "nowhere.json");
    let (_, entries) = good();
    let without: Vec<_> = entries
        .into_iter()
        .filter(|(n, _)| n != "manifest.json")
        .collect();
    refused(without, "manifest.json");
}

#[test]
fn an_interrupted_add_resumes_without_storing_blobs_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let image = DockerImage::new(21, 3);
    let archive = tmp.path().join("save.tar");
    write(
        &archive,
        &tar_of(&legacy_entries(&[(&["resume:1"], &image)])),
    );
    // What an interrupted run left: one layer stored, nothing linked or tagged.
    {
        let store =
            airlock_store::Store::open(&data, airlock_store::StoreOptions::default()).unwrap();
        let l = &image.layers[1];
        store
            .put_blob(&sha256(l).parse().unwrap(), &l[..], Default::default())
            .unwrap();
    }
    let o = add(
        tmp.path(),
        &data,
        &[
            "--json",
            "add",
            &format!("docker-archive:{}", archive.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let status = |d: &str| {
        events
            .iter()
            .find(|e| e["event"] == "blob" && e["digest"] == d)
            .map(|e| e["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        status(&sha256(&image.layers[1])).as_deref(),
        Some("present")
    );
    assert_eq!(status(&sha256(&image.layers[0])).as_deref(), Some("stored"));
    assert_eq!(status(&image.config_digest()).as_deref(), Some("stored"));
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .expect("done event");
    assert_eq!(done["blobs_stored"], 3);
    assert!(tag_digest(&ls(tmp.path(), &data), "docker.io/library/resume", "1").is_some());
}

#[test]
fn containerd_image_store_archive_keeps_the_registry_manifest() {
    // `docker save` with the containerd image store: an OCI layout of the compressed blobs,
    // with a manifest.json naming them; the image keeps its published manifest digest.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let image = airlock_conformance::ImageBuilder::new().layers(2).build();
    let blob = |b: &airlock_conformance::Blob| {
        (
            format!("blobs/sha256/{}", b.digest.trim_start_matches("sha256:")),
            Entry::File(b.bytes.to_vec()),
        )
    };
    let mut entries = vec![(
        "oci-layout".to_owned(),
        Entry::File(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    )];
    entries.extend(image.blobs().chain([&image.manifest]).map(blob));
    let mut d = image.manifest.descriptor();
    d["annotations"] = serde_json::json!({
        "io.containerd.image.name": "docker.io/library/web:2.1",
        "org.opencontainers.image.ref.name": "2.1",
    });
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [d]});
    entries.push((
        "index.json".into(),
        Entry::File(index.to_string().into_bytes()),
    ));
    let listing = serde_json::json!([{
        "Config": blob(&image.config).0,
        "RepoTags": ["web:2.1"],
        "Layers": image.layers.iter().map(|l| blob(l).0).collect::<Vec<_>>(),
    }]);
    entries.push((
        "manifest.json".into(),
        Entry::File(listing.to_string().into_bytes()),
    ));
    let archive = tmp.path().join("save.tar");
    write(&archive, &tar_of(&entries));
    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("docker-archive:{}", archive.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        tag_digest(&ls(tmp.path(), &data), "docker.io/library/web", "2.1").as_deref(),
        Some(image.manifest.digest.as_str())
    );
}
