//! Content for `airlock add` tests: uncompressed layers, image configs, tars written entry by
//! entry (hostile names included), docker save archives in both layouts, OCI layouts.

use std::path::Path;

use sha2::{Digest as _, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn hex_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One tar entry as written, names and link targets byte for byte (no validation).
pub enum Entry {
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    Dir,
}

/// A tar of `entries`, in order.
pub fn tar_of(entries: &[(String, Entry)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, entry) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        let data: &[u8] = match entry {
            Entry::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                d
            }
            Entry::Symlink(t) | Entry::Hardlink(t) => {
                h.set_entry_type(if matches!(entry, Entry::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                let gnu = h.as_gnu_mut().expect("gnu header");
                gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
                &[]
            }
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                &[]
            }
        };
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// An uncompressed layer: a tar of a few files, different per seed.
pub fn layer(seed: u64, bytes: usize) -> Vec<u8> {
    let files = (0..3)
        .map(|i| {
            (
                format!("opt/app/{seed}-{i}.bin"),
                Entry::File(crate::common::bytes(seed * 10 + i, bytes / 3)),
            )
        })
        .collect::<Vec<_>>();
    tar_of(&files)
}

/// An image as `docker save` holds it: a config and uncompressed layers.
pub struct DockerImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

impl DockerImage {
    pub fn new(seed: u64, layers: usize) -> DockerImage {
        let layers: Vec<Vec<u8>> = (0..layers)
            .map(|i| layer(seed * 100 + i as u64, 60_000))
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Labels": {"seed": seed.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string()
        .into_bytes();
        DockerImage { config, layers }
    }

    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }
}

/// The entries of a legacy `docker save` archive (`<id>/layer.tar`, `<hex>.json`); a layer
/// already written for an earlier image is a symlink to it, as docker and skopeo write them.
pub fn legacy_entries(images: &[(&[&str], &DockerImage)]) -> Vec<(String, Entry)> {
    let mut entries = Vec::new();
    let mut written: Vec<(String, String)> = Vec::new();
    let mut listing = Vec::new();
    for (n, (tags, image)) in images.iter().enumerate() {
        let config = format!("{}.json", hex_of(&image.config));
        entries.push((config.clone(), Entry::File(image.config.clone())));
        let mut layers = Vec::new();
        for (i, l) in image.layers.iter().enumerate() {
            let id = hex_of(format!("{n}-{i}").as_bytes());
            let path = format!("{id}/layer.tar");
            entries.push((format!("{id}/"), Entry::Dir));
            entries.push((format!("{id}/VERSION"), Entry::File(b"1.0".to_vec())));
            match written.iter().find(|(d, _)| *d == sha256(l)) {
                Some((_, first)) => {
                    entries.push((path.clone(), Entry::Symlink(format!("../{first}"))))
                }
                None => {
                    entries.push((path.clone(), Entry::File(l.clone())));
                    written.push((sha256(l), path.clone()));
                }
            }
            layers.push(path);
        }
        listing.push(serde_json::json!({"Config": config, "RepoTags": tags, "Layers": layers}));
    }
    entries.push((
        "manifest.json".into(),
        Entry::File(serde_json::to_vec(&listing).expect("json")),
    ));
    entries.push(("repositories".into(), Entry::File(b"{}".to_vec())));
    entries
}

/// The entries of a Docker 25+ archive: OCI-style `blobs/sha256/<hex>` plus `manifest.json`.
pub fn oci_style_entries(images: &[(&[&str], &DockerImage)]) -> Vec<(String, Entry)> {
    let mut entries = vec![(
        "oci-layout".to_owned(),
        Entry::File(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    )];
    let mut seen = Vec::new();
    let mut listing = Vec::new();
    for (tags, image) in images {
        let mut add = |bytes: &Vec<u8>| {
            let name = format!("blobs/sha256/{}", hex_of(bytes));
            if !seen.contains(&name) {
                seen.push(name.clone());
                entries.push((name.clone(), Entry::File(bytes.clone())));
            }
            name
        };
        let config = add(&image.config);
        let layers: Vec<String> = image.layers.iter().map(&mut add).collect();
        listing.push(serde_json::json!({"Config": config, "RepoTags": tags, "Layers": layers}));
    }
    entries.push((
        "manifest.json".into(),
        Entry::File(serde_json::to_vec(&listing).expect("json")),
    ));
    entries.push((
        "index.json".into(),
        Entry::File(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()),
    ));
    entries
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write");
}

/// A tar of a directory tree (an OCI layout made into an oci-archive).
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).expect("tar dir");
    b.into_inner().expect("tar")
}

/// `airlock --data DATA --json ls` as JSON.
pub fn ls(cwd: &Path, data: &Path) -> serde_json::Value {
    let o = crate::common::airlock(
        cwd,
        &["--data", data.to_str().expect("utf-8"), "--json", "ls"],
    );
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    serde_json::from_str(&crate::common::stdout(&o)).expect("ls json")
}

/// The digest a tag points at, from `ls --json`.
pub fn tag_digest(ls: &serde_json::Value, repo: &str, tag: &str) -> Option<String> {
    ls["repositories"]
        .as_array()?
        .iter()
        .find(|r| r["repository"] == repo)?["tags"]
        .as_array()?
        .iter()
        .find(|t| t["tag"] == tag)
        .and_then(|t| t["digest"].as_str().map(str::to_owned))
}

/// Number of repositories `ls --json` shows.
pub fn repo_count(ls: &serde_json::Value) -> usize {
    ls["repositories"].as_array().map_or(0, Vec::len)
}

/// `airlock --data DATA ARGS`.
pub fn add(cwd: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--data", data.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    crate::common::airlock(cwd, &all)
}

/// Reads a blob back from a store (opened read-only).
pub fn read_blob(data: &Path, digest: &str) -> Vec<u8> {
    let store = airlock_store::Store::open(
        data,
        airlock_store::StoreOptions {
            access: airlock_store::Access::ReadOnly,
            ..Default::default()
        },
    )
    .expect("open store");
    store
        .read_blob(&digest.parse().expect("digest"))
        .expect("read blob")
}
