use std::{io::Write as _, path::Path};

use airlock_ingest::{
    AddOptions, Compression, ManifestFormat, NoProgress, Source, Untagged, plan_source,
    store_and_commit,
};
use airlock_store::Digest;

use crate::support::store;

/// A legacy `docker save` archive of one image with one layer, tagged `RepoTags`.
fn write_archive(path: &Path, repo_tags: &[&str], extra: Option<(&str, &[u8])>) -> Digest {
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let data = vec![b'x'; 4096];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/file", &data[..])
            .expect("append");
        b.into_inner().expect("tar")
    };
    let diff_id = Digest::sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .expect("json");
    let config_name = format!("{}.json", Digest::sha256(&config).hex());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": repo_tags, "Layers": ["abc/layer.tar"],
    }]))
    .expect("json");
    let mut out = tar::Builder::new(std::fs::File::create(path).expect("create"));
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("manifest.json", &manifest),
        (&config_name, &config),
        ("abc/layer.tar", &layer),
    ];
    entries.extend(extra);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, name, data).expect("append");
    }
    out.into_inner().expect("tar").flush().expect("flush");
    diff_id
}

#[test]
fn docker_archives_get_deterministic_manifests_under_normalized_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tmp.path().join("image.tar");
    let diff_id = write_archive(&archive, &["nginx:1.27"], None);
    let source =
        Source::parse(&format!("docker-archive:{}", archive.display()), None).expect("source");
    let plan = |opts: &AddOptions| {
        plan_source(&source, None, opts, Untagged::Refuse, &NoProgress).expect("plan")
    };
    let opts = AddOptions::default();
    let first = plan(&opts);
    assert_eq!(first[0].repo.as_str(), "docker.io/library/nginx");
    assert_eq!(
        first[0].root.digest,
        plan(&opts)[0].root.digest,
        "deterministic"
    );
    assert_eq!(
        first[0].blobs[1].digest.to_string(),
        diff_id.to_string(),
        "an uncompressed layer is its diff id"
    );
    let docker = AddOptions {
        format: ManifestFormat::Docker,
        ..AddOptions::default()
    };
    assert_eq!(first[0].root.media_type, airlock_oci::OCI_MANIFEST);
    assert_eq!(
        plan(&docker)[0].root.media_type,
        airlock_oci::DOCKER_MANIFEST
    );

    let gzip = AddOptions {
        compression: Compression::Gzip,
        ..AddOptions::default()
    };
    let gz = plan(&gzip);
    assert_ne!(gz[0].blobs[1].digest.to_string(), diff_id.to_string());
    assert_eq!(
        gz[0].root.digest,
        plan(&gzip)[0].root.digest,
        "gzip is deterministic"
    );
    let store = store(&tmp.path().join("store"));
    store_and_commit(&store, &gz, &gzip, &NoProgress).expect("commit");
    let tagged = store
        .tag("docker.io/library/nginx", "1.27")
        .expect("tag")
        .expect("tagged");
    assert_eq!(tagged.to_string(), gz[0].root.digest.to_string());
}

#[test]
fn hostile_entries_and_bad_names_are_refused_naming_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tmp.path().join("evil.tar");
    // The tar crate refuses to write `..` itself: patch the name in the written header.
    write_archive(&archive, &["app:1"], None);
    let mut bytes = std::fs::read(&archive).expect("read");
    let at = bytes
        .windows(13)
        .position(|w| w == b"abc/layer.tar")
        .expect("entry name");
    bytes[at..at + 13].copy_from_slice(b"../layer.tarx");
    std::fs::write(&archive, &bytes).expect("write");
    let source =
        Source::parse(&format!("docker-archive:{}", archive.display()), None).expect("source");
    let err = plan_source(
        &source,
        None,
        &AddOptions::default(),
        Untagged::Refuse,
        &NoProgress,
    )
    .expect_err("escaping entry");
    assert!(err.to_string().contains("../layer.tarx"), "{err}");
    assert!(err.to_string().contains("escapes the archive"), "{err}");

    let bad = tmp.path().join("bad.tar");
    write_archive(&bad, &["Bad/Name:1"], None);
    let source = Source::parse(&format!("docker-archive:{}", bad.display()), None).expect("source");
    let err = plan_source(
        &source,
        None,
        &AddOptions::default(),
        Untagged::Refuse,
        &NoProgress,
    )
    .expect_err("bad name");
    assert!(err.to_string().contains("RepoTags"), "{err}");
}
