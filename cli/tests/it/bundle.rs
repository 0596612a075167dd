//! Issue 5: bundles on removable media, through the `airlock` binary: an application of
//! several images sharing a base, exported into many tiny volumes, imported in shuffled order
//! one volume at a time, served and pulled back by skopeo; a delta after a base rebuild;
//! damaged, truncated, foreign and missing volumes; kill -9 in the middle of an import.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use airlock_conformance::{
    Blob, Image, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, write_oci_layout,
};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use serde_json::json;

use crate::{
    common::{airlock, bytes, stderr, stdout},
    content::{ls, tag_digest, write},
};

/// One rootfs-like tar: `files` files of text and binary, some repeated; `edit` changes about
/// one file in fifty and gives one in ten a new mtime (a rebuilt base).
fn rootfs(files: usize, edit: Option<u64>) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut edits = edit.map(rand_chacha::ChaCha8Rng::seed_from_u64);
    for i in 0..files {
        let len = rng.gen_range(200..12_000);
        let mut data = if i % 3 == 0 {
            bytes(i as u64 + 1, len)
        } else {
            let words = ["lib", "usr", "share", "config", "data", "the", "of", "and"];
            (0..len / 4)
                .flat_map(|_| {
                    let w = words[rng.gen_range(0..words.len())];
                    format!("{w} ").into_bytes()
                })
                .collect()
        };
        let mut mtime = 1_700_000_000;
        if let Some(e) = edits.as_mut() {
            if e.gen_ratio(1, 50) {
                let at = e.gen_range(0..data.len().max(1));
                if let Some(b) = data.get_mut(at) {
                    *b ^= 0x5a;
                }
            }
            if e.gen_ratio(1, 10) {
                mtime += 86_400;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("usr/lib/pkg{}/file{i}", i % 17), &data[..])
            .unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

fn service_layer(name: &str, version: u64) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..4u64 {
        let data = bytes(version * 1000 + i + name.len() as u64 * 7, 40_000);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000 + version);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("opt/{name}/part{i}"), &data[..])
            .unwrap();
    }
    gzip(&tar.into_inner().unwrap())
}

fn image(layers: &[Vec<u8>], label: &str) -> Image {
    let layers: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(OCI_LAYER_GZIP, l.clone()))
        .collect();
    let (os, arch) = airlock_conformance::host_platform();
    // Real diff ids: containerd unpacks what it pulls (the live-site test) and checks them.
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| {
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&l.bytes[..]), &mut tar)
                .unwrap();
            airlock_conformance::Algorithm::Sha256.digest(&tar)
        })
        .collect();
    let config = Blob::json(
        OCI_CONFIG,
        &json!({"architecture": arch, "os": os, "config": {"Labels": {"service": label}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    );
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>()}),
    );
    Image {
        config,
        layers,
        manifest,
    }
}

pub(crate) const SERVICES: [&str; 3] = ["web", "api", "worker"];

/// Version 1 or 2 of the shop: three services over one base. Version 2 rebuilds the base
/// (edits and new mtimes) and changes the api service. Returns the images by service.
pub(crate) fn shop(dir: &Path, version: u64) -> Vec<Image> {
    let base = gzip(&rootfs(400, (version > 1).then_some(version)));
    let images: Vec<Image> = SERVICES
        .iter()
        .map(|s| {
            let v = if *s == "api" { version } else { 1 };
            image(&[base.clone(), service_layer(s, v)], s)
        })
        .collect();
    let layout = dir.join(format!("layout-{version}"));
    let tagged: Vec<(&str, &Image)> = SERVICES.iter().copied().zip(&images).collect();
    write_oci_layout(&layout, &tagged).unwrap();
    let mut app = format!("name: shop\nversion: \"{version}.0\"\nimages:\n");
    for s in SERVICES {
        app.push_str(&format!(
            "  - source: oci:{}:{s}\n    as: example.com/shop/{s}:{version}.0\n",
            layout.display()
        ));
    }
    write(&dir.join(format!("app-{version}.yaml")), app.as_bytes());
    images
}

pub(crate) fn run(cwd: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--data", data.to_str().unwrap()];
    all.extend_from_slice(args);
    airlock(cwd, &all)
}

pub(crate) fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub(crate) fn add_shop(dir: &Path, data: &Path, version: u64) -> Vec<Image> {
    let images = shop(dir, version);
    let app = dir.join(format!("app-{version}.yaml"));
    ok(run(dir, data, &["add", "-f", app.to_str().unwrap()]));
    images
}

pub(crate) fn volumes(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".airlock") && !n.contains(".index.")
        })
        .collect();
    v.sort();
    v
}

fn dir_bytes(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

pub(crate) fn export(cwd: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec![
        "export",
        "airlock/apps/shop:1.0",
        "--out",
        out.to_str().unwrap(),
        "--no-binary",
    ];
    args.extend_from_slice(extra);
    ok(run(cwd, data, &args));
    volumes(out)
}

/// Imports one path; returns the exit code and stdout.
fn import(cwd: &Path, data: &Path, paths: &[&Path]) -> (i32, String) {
    let mut args = vec![
        "import".to_owned(),
        "--no-prompt".to_owned(),
        "--allow-unsigned".to_owned(),
    ];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(cwd, data, &args);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    (o.status.code().unwrap_or(-1), out)
}

fn assert_verifies(cwd: &Path, data: &Path) {
    let out = ok(run(cwd, data, &["verify"]));
    assert!(!out.contains("problem"), "{out}");
}

#[test]
fn issue_5_round_trip_in_shuffled_volumes_then_pulled_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = tmp.path().join("vendor");
    let images = add_shop(tmp.path(), &vendor, 1);
    let out = tmp.path().join("out");
    let vols = export(
        tmp.path(),
        &vendor,
        &out,
        &[
            "--volume-size",
            "400K",
            "--level",
            "3",
            "--name",
            "shop-1.0",
        ],
    );
    assert!(vols.len() >= 4, "{} volumes", vols.len());
    for v in &vols {
        assert!(
            std::fs::metadata(v).unwrap().len() <= 400 * 1000,
            "{v:?} too big"
        );
    }
    assert!(out.join("shop-1.0.index.airlock").is_file());

    let site = tmp.path().join("site");
    let mut order = vols.clone();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
    let (last, first) = order.split_last().unwrap();
    for v in first {
        let (code, out) = import(tmp.path(), &site, &[v]);
        assert_eq!(code, 1, "incomplete until the last volume: {out}");
        assert!(out.contains("still needed"), "{out}");
    }
    let (code, out) = import(tmp.path(), &site, &[last]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported bundle shop-1.0"), "{out}");
    assert_verifies(tmp.path(), &site);
    let listed = ls(tmp.path(), &site);
    for (s, img) in SERVICES.iter().zip(&images) {
        let tagged = tag_digest(&listed, &format!("example.com/shop/{s}"), "1.0");
        assert_eq!(tagged.as_deref(), Some(img.manifest.digest.as_str()), "{s}");
    }
    assert!(tag_digest(&listed, "airlock/apps/shop", "1.0").is_some());
    // Importing again changes nothing and says so.
    let (code, out) = import(tmp.path(), &site, &[&out_dir(&vols)]);
    assert_eq!(code, 0, "{out}");
    pull_with_skopeo(tmp.path(), &site, &images);
}

fn out_dir(vols: &[PathBuf]) -> PathBuf {
    vols[0].parent().unwrap().to_owned()
}

/// Serves `data` and copies each service image out with skopeo, which checks every digest.
fn pull_with_skopeo(cwd: &Path, data: &Path, images: &[Image]) {
    let Some(bin) = crate::add_skopeo::find_skopeo() else {
        return;
    };
    let served = crate::add_skopeo::Served::start(cwd, data);
    for (s, img) in SERVICES.iter().zip(images) {
        let remote = format!("docker://{}/example.com/shop/{s}:1.0", served.addr);
        let dest = cwd.join(format!("pulled-{s}"));
        crate::add_skopeo::skopeo(
            &bin,
            &[
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                &remote,
                &format!("oci:{}:{s}", dest.display()),
            ],
        );
        let back = airlock_conformance::read_oci_layout(&dest, s).unwrap();
        assert_eq!(back.manifest.digest, img.manifest.digest, "{s}");
        for (got, want) in back.layers.iter().zip(&img.layers) {
            assert_eq!(got.digest, want.digest);
        }
    }
}

#[test]
fn issue_5_delta_after_a_base_rebuild_ships_little() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = tmp.path().join("vendor");
    let v1 = add_shop(tmp.path(), &vendor, 1);
    let full = tmp.path().join("full");
    export(
        tmp.path(),
        &vendor,
        &full,
        &["--name", "shop-1.0", "--level", "3"],
    );
    let site = tmp.path().join("site");
    let (code, out) = import(tmp.path(), &site, &[&full]);
    assert_eq!(code, 0, "{out}");

    let v2 = add_shop(tmp.path(), &vendor, 2);
    let delta = tmp.path().join("delta");
    let index = full.join("shop-1.0.index.airlock");
    let dry = ok(run(
        tmp.path(),
        &vendor,
        &[
            "export",
            "airlock/apps/shop:2.0",
            "--out",
            delta.to_str().unwrap(),
            "--since",
            index.to_str().unwrap(),
            "--no-binary",
            "--dry-run",
        ],
    ));
    assert!(dry.contains("delta over bundle shop-1.0"), "{dry}");
    assert!(dry.contains("dry run"), "{dry}");
    assert!(
        !delta.exists() || volumes(&delta).is_empty(),
        "a dry run writes nothing"
    );
    ok(run(
        tmp.path(),
        &vendor,
        &[
            "export",
            "airlock/apps/shop:2.0",
            "--out",
            delta.to_str().unwrap(),
            "--since",
            index.to_str().unwrap(),
            "--name",
            "shop-2.0",
            "--no-binary",
        ],
    ));
    let delta_bytes = dir_bytes(&volumes(&delta));
    let old: std::collections::HashSet<&str> = v1
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.digest.as_str()))
        .collect();
    let new_layer_bytes: u64 = v2
        .iter()
        .flat_map(|i| &i.layers)
        .filter(|l| !old.contains(l.digest.as_str()))
        .map(|l| l.size())
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .sum();
    eprintln!("delta {delta_bytes} B for {new_layer_bytes} B of new compressed layers");
    assert!(
        delta_bytes * 5 <= new_layer_bytes,
        "delta {delta_bytes} B > 1/5 of {new_layer_bytes} B"
    );
    let (code, out) = import(tmp.path(), &site, &[&delta]);
    assert_eq!(code, 0, "{out}");
    assert_verifies(tmp.path(), &site);
    let listed = ls(tmp.path(), &site);
    for (s, img) in SERVICES.iter().zip(&v2) {
        let tagged = tag_digest(&listed, &format!("example.com/shop/{s}"), "2.0");
        assert_eq!(tagged.as_deref(), Some(img.manifest.digest.as_str()), "{s}");
    }
    // A store without the base is told what it lacks, and nothing moves.
    let empty = tmp.path().join("empty");
    let o = run(
        tmp.path(),
        &empty,
        &[
            "import",
            "--no-prompt",
            "--allow-unsigned",
            delta.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("shop-1.0") && stderr(&o).contains("delta"),
        "{}",
        stderr(&o)
    );

    // The same delta from the site's inventory.
    let inventory = tmp.path().join("site.inventory");
    let site_v1 = tmp.path().join("site-v1");
    let (code, out) = import(tmp.path(), &site_v1, &[&full]);
    assert_eq!(code, 0, "{out}");
    ok(run(
        tmp.path(),
        &site_v1,
        &["inventory", "--out", inventory.to_str().unwrap()],
    ));
    let by_inventory = tmp.path().join("by-inventory");
    ok(run(
        tmp.path(),
        &vendor,
        &[
            "export",
            "airlock/apps/shop:2.0",
            "--out",
            by_inventory.to_str().unwrap(),
            "--have",
            inventory.to_str().unwrap(),
            "--no-binary",
        ],
    ));
    let inv_bytes = dir_bytes(&volumes(&by_inventory));
    assert!(inv_bytes * 5 <= new_layer_bytes, "{inv_bytes} B");
    let (code, out) = import(tmp.path(), &site_v1, &[&by_inventory]);
    assert_eq!(code, 0, "{out}");
    assert_verifies(tmp.path(), &site_v1);
}

/// A vendor store with v1 and its volumes in `out` (tiny, many).
fn exported(tmp: &Path) -> (PathBuf, Vec<PathBuf>) {
    let vendor = tmp.join("vendor");
    add_shop(tmp, &vendor, 1);
    let out = tmp.join("out");
    let vols = export(
        tmp,
        &vendor,
        &out,
        &[
            "--volume-size",
            "400K",
            "--level",
            "3",
            "--name",
            "shop-1.0",
        ],
    );
    (vendor, vols)
}

#[test]
fn issue_5_damaged_truncated_and_foreign_volumes_are_named_and_the_rest_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    assert!(vols.len() >= 4);
    let damaged_dir = tmp.path().join("damaged");
    std::fs::create_dir_all(&damaged_dir).unwrap();
    let mut given = Vec::new();
    for (i, v) in vols.iter().enumerate() {
        let copy = damaged_dir.join(v.file_name().unwrap());
        let mut bytes = std::fs::read(v).unwrap();
        if i == 1 {
            // A flipped byte inside the first frame (the header is 88 bytes).
            bytes[200] ^= 0x01;
        }
        if i == 2 {
            bytes.truncate(bytes.len() / 2);
        }
        std::fs::write(&copy, &bytes).unwrap();
        given.push(copy);
    }
    // A volume of another bundle mixed in.
    let other = tmp.path().join("other");
    let other_vendor = tmp.path().join("other-vendor");
    add_shop(&tmp.path().join("o"), &other_vendor, 2).len();
    ok(run(
        tmp.path(),
        &other_vendor,
        &[
            "export",
            "airlock/apps/shop:2.0",
            "--out",
            other.to_str().unwrap(),
            "--name",
            "other",
            "--no-binary",
            "--volume-size",
            "400K",
            "--level",
            "3",
        ],
    ));
    let foreign = volumes(&other)[0].clone();
    // Each volume can be checked alone, without importing anything.
    let vendor = tmp.path().join("vendor");
    let good: Vec<&Path> = vols.iter().map(PathBuf::as_path).collect();
    let mut args = vec!["import", "--dry-run", "--allow-unsigned"];
    args.extend(good.iter().map(|p| p.to_str().unwrap()));
    let o = run(tmp.path(), &vendor, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("intact"), "{}", stdout(&o));
    let o = run(
        tmp.path(),
        &vendor,
        &[
            "import",
            "--dry-run",
            "--allow-unsigned",
            given[1].to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("damaged:"), "{}", stdout(&o));
    let site = tmp.path().join("site");
    // The foreign bundle (shop 2.0) shares the web and worker layers with shop 1.0, possibly
    // all the chunks of the flipped frame. Given last, it is imported last, so volume 2 is
    // still needed below; the flipped frame would be named even if it came first.
    let mut paths: Vec<&Path> = given.iter().map(PathBuf::as_path).collect();
    paths.push(&foreign);
    let (code, out) = import(tmp.path(), &site, &paths);
    eprintln!("{out}");
    assert_eq!(code, 1, "{out}");
    let name1 = given[1].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.contains("damaged:") && out.contains(&name1) && out.contains("offset"),
        "the flipped volume is named with an offset: {out}"
    );
    let name2 = given[2].file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.contains(&name2), "the truncated volume is named: {out}");
    assert!(out.contains("other"), "the foreign bundle is named: {out}");
    assert!(
        out.contains("volume(s) 2, 3 of"),
        "missing volumes by number: {out}"
    );
    assert!(
        out.contains("example.com/shop/"),
        "affected images named: {out}"
    );
    assert_verifies(tmp.path(), &site);
    let listed = ls(tmp.path(), &site);
    assert!(
        tag_digest(&listed, "airlock/apps/shop", "1.0").is_none(),
        "no tag moves before everything is in"
    );
    // Good copies of volumes 2 and 3 complete it.
    let (code, out) = import(tmp.path(), &site, &[&vols[1], &vols[2]]);
    assert_eq!(code, 0, "{out}");
    assert_verifies(tmp.path(), &site);
    let listed = ls(tmp.path(), &site);
    assert!(tag_digest(&listed, "airlock/apps/shop", "1.0").is_some());
}

#[test]
fn issue_5_killed_imports_resume_and_the_store_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let dir = out_dir(&vols);
    let site = tmp.path().join("site");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for round in 0..6 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args([
                "--data",
                site.to_str().unwrap(),
                "import",
                "--no-prompt",
                "--allow-unsigned",
                dir.to_str().unwrap(),
            ])
            .current_dir(tmp.path())
            .env_remove("AIRLOCK_DATA")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..250)));
        let _ = child.kill();
        let _ = child.wait();
        let o = run(tmp.path(), &site, &["verify"]);
        if site.join("store.json").exists() {
            assert!(o.status.success(), "round {round}: {}", stdout(&o));
        }
    }
    let (code, out) = import(tmp.path(), &site, &[&dir]);
    assert_eq!(code, 0, "{out}");
    assert_verifies(tmp.path(), &site);
    let listed = ls(tmp.path(), &site);
    assert!(tag_digest(&listed, "airlock/apps/shop", "1.0").is_some());
}

#[test]
fn issue_5_missing_volume_is_named_then_completed_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let site = tmp.path().join("site");
    let rest: Vec<&Path> = vols.iter().skip(1).map(PathBuf::as_path).collect();
    let (code, out) = import(tmp.path(), &site, &rest);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("volume(s) 1 of"), "{out}");
    let (code, out) = import(tmp.path(), &site, &[&vols[0]]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported bundle shop-1.0"), "{out}");
}

#[test]
fn issue_5_bad_export_arguments_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = tmp.path().join("vendor");
    add_shop(tmp.path(), &vendor, 1);
    let out = tmp.path().join("out");
    for (args, says) in [
        (vec!["export", "nope/x:1", "--out"], "no such tag"),
        (
            vec![
                "export",
                "airlock/apps/shop:1.0",
                "--volume-size",
                "floppy",
                "--out",
            ],
            "cd, dvd",
        ),
        (
            vec![
                "export",
                "airlock/apps/shop:1.0",
                "--volume-size",
                "10K",
                "--out",
            ],
            "too small",
        ),
    ] {
        let mut args = args;
        args.push(out.to_str().unwrap());
        let o = run(tmp.path(), &vendor, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert!(
        !out.exists() || volumes(&out).is_empty(),
        "nothing half-written"
    );
}

/// Replaces the first script segment of a blob description (layout in airlock-store's
/// `transfer/description.rs`) with `segment`; `None` when the blob has no script.
fn with_first_script_segment(desc: &[u8], segment: &[u8]) -> Option<Vec<u8>> {
    let u32_at = |at: usize| u32::from_le_bytes(desc[at..at + 4].try_into().unwrap()) as usize;
    // magic, version, meta_len, meta; then the recipe's segments (start u64, len u32, bytes).
    let mut at = 12 + u32_at(8);
    let recipe = u32_at(at);
    at += 4;
    for _ in 0..recipe {
        at += 12 + u32_at(at + 8);
    }
    if u32_at(at) == 0 {
        return None;
    }
    let first = at + 4;
    let len = u32_at(first + 8);
    let mut out = desc[..first + 8].to_vec();
    out.extend_from_slice(&(segment.len() as u32).to_le_bytes());
    out.extend_from_slice(segment);
    out.extend_from_slice(&desc[first + 12 + len..]);
    Some(out)
}

/// A zstd frame of one raw block of `content` whose header claims `claimed` bytes.
fn zstd_frame_claiming(claimed: u64, content: &[u8]) -> Vec<u8> {
    // Magic; descriptor: an 8-byte content size, no checksum; a window of 1 MiB.
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0b1100_0000, 10 << 3];
    f.extend_from_slice(&claimed.to_le_bytes());
    // One raw block, the last: (size << 3) | (type 0 << 1) | last.
    let header = ((content.len() as u32) << 3) | 1;
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(content);
    f
}

/// Rewrites every volume as an attacker would: the same frames, and an index whose first
/// scripted blob's first script segment claims a terabyte (every check recomputed). Returns
/// that blob.
fn rewrite_with_a_terabyte_segment(vols: &[PathBuf]) -> String {
    use airlock_bundle::{VolumeReader, VolumeWriter, parse_volume_file_name};
    let readers: Vec<VolumeReader> = vols
        .iter()
        .map(|v| VolumeReader::open(v).unwrap())
        .collect();
    let mut index = readers[0].index().unwrap().clone();
    let bomb = zstd_frame_claiming(1 << 40, b"\x01\x01\x00\x00\x00x");
    let blob = index
        .blobs
        .iter_mut()
        .find_map(|b| {
            let desc = with_first_script_segment(&b.description, &bomb)?;
            b.description = desc;
            Some(b.digest.to_string())
        })
        .expect("a gzip layer rebuilt by a script");
    let mut pending = Vec::new();
    for v in &readers {
        let file = v.path().file_name().unwrap().to_str().unwrap();
        let (name, number) = parse_volume_file_name(file).unwrap();
        let frames: Vec<Vec<u8>> = index
            .volumes
            .iter()
            .find(|e| e.number == number)
            .map(|e| {
                e.frames
                    .iter()
                    .map(|f| v.read_frame(f.offset, f.len).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let dir = v.path().parent().unwrap();
        let mut w = VolumeWriter::create(dir, &name, number, index.bundle_id, 1 << 30).unwrap();
        for f in &frames {
            w.append_frame(f).unwrap();
        }
        pending.push(w.close_frames().unwrap());
    }
    let bytes = index.encode().unwrap();
    for p in pending {
        p.finish(index.volume_count, &bytes).unwrap();
    }
    blob
}

/// Issue 16: a bundle whose script segment would expand past the limit is refused by
/// `airlock import` and by its dry run (exit 2), naming the file, the volume, the index's
/// offset and the segment; nothing is written: no chunk, no blob, no tag, and the store
/// verifies.
#[test]
fn issue_16_a_segment_that_would_expand_past_the_limit_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let blob = rewrite_with_a_terabyte_segment(&vols);
    let index_at = airlock_bundle::VolumeReader::open(&vols[0])
        .unwrap()
        .index_offset()
        .unwrap();
    let site = tmp.path().join("site");
    let paths: Vec<&str> = vols.iter().map(|v| v.to_str().unwrap()).collect();
    // The import creates the store; the dry run then reads it.
    for dry_run in [false, true] {
        let mut args = vec!["import", "--no-prompt", "--allow-unsigned"];
        if dry_run {
            args.push("--dry-run");
        }
        args.extend(&paths);
        let o = run(tmp.path(), &site, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "dry run {dry_run}: {err}");
        let named = format!(
            "error: {} (volume 1): bundle index at offset {index_at}: blob {blob} is refused: \
             blob description is corrupt: script segment at 0 of blob {blob}: its zstd frame \
             claims 1099511627776 bytes, over the limit of 16777216",
            vols[0].display()
        );
        assert!(err.contains(&named), "{named}\nnot in\n{err}");
    }
    let listed = ls(tmp.path(), &site);
    assert_eq!(crate::content::repo_count(&listed), 0, "{listed}");
    assert_verifies(tmp.path(), &site);
    let store = airlock_store::Store::open(&site, airlock_store::StoreOptions::default()).unwrap();
    assert!(store.blob_digests().unwrap().is_empty());
    assert_eq!(
        store.for_each_chunk_id(|_| {}).unwrap(),
        0,
        "no chunk stored"
    );
    assert!(!site.join("imports").exists(), "no index saved");
}

/// A "disc": copies of `vols`, the bundle's index file, and what else burns onto media.
fn disc(tmp: &Path, name: &str, vols: &[PathBuf], edit: impl Fn(usize, &mut Vec<u8>)) -> PathBuf {
    let disc = tmp.join(name);
    std::fs::create_dir_all(disc.join("lost+found")).unwrap();
    for (i, v) in vols.iter().enumerate() {
        let mut bytes = std::fs::read(v).unwrap();
        edit(i, &mut bytes);
        std::fs::write(disc.join(v.file_name().unwrap()), bytes).unwrap();
    }
    let index = out_dir(vols).join("shop-1.0.index.airlock");
    std::fs::copy(&index, disc.join("shop-1.0.index.airlock")).unwrap();
    std::fs::write(
        disc.join("README.txt"),
        "Import with: airlock import /media/cdrom/*\n",
    )
    .unwrap();
    std::fs::write(disc.join("SHA256SUMS"), "0000  shop-1.0.001.airlock\n").unwrap();
    disc
}

/// Every entry of `dir`, as the shell expands `dir/*`.
fn glob(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all
}

#[test]
fn issue_15_import_takes_everything_on_the_disc() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let site = tmp.path().join("site");
    let cdrom = disc(tmp.path(), "cdrom", &vols, |_, _| {});
    let given = glob(&cdrom);
    let paths: Vec<&Path> = given.iter().map(PathBuf::as_path).collect();
    let (code, out) = import(tmp.path(), &site, &paths);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported bundle shop-1.0"), "{out}");
    for name in ["README.txt", "SHA256SUMS", "lost+found"] {
        let note = out
            .lines()
            .find(|l| l.starts_with("ignoring ") && l.contains(name))
            .unwrap_or_else(|| panic!("no note on {name}: {out}"));
        assert!(!note.contains("damaged"), "{note}");
    }
    assert!(
        out.contains("shop-1.0.index.airlock: the index of bundle shop-1.0; not needed"),
        "{out}"
    );
    assert!(!out.contains("not an airlock volume: shop"), "{out}");
    assert_verifies(tmp.path(), &site);
    assert!(tag_digest(&ls(tmp.path(), &site), "airlock/apps/shop", "1.0").is_some());

    // --json lists what was ignored.
    let mut args = vec!["--json", "import", "--no-prompt", "--allow-unsigned"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let o = run(tmp.path(), &site, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ignored: Vec<&str> = report["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(ignored.len(), 4, "{report}");
    assert!(report["unreadable"].as_array().unwrap().is_empty());

    // Only files that are no volume: nothing to import is an error.
    let (code, out) = import(
        tmp.path(),
        &tmp.path().join("other-site"),
        &[&cdrom.join("README.txt")],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("none of the 1 path(s) given is an airlock volume"),
        "{out}"
    );
}

#[test]
fn issue_15_a_damaged_volume_on_the_disc_is_still_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let site = tmp.path().join("site");
    // Volume 2 cut short, volume 3 renamed: both still volumes by their first bytes.
    let cdrom = disc(tmp.path(), "cdrom", &vols, |i, bytes| {
        if i == 1 {
            bytes.truncate(bytes.len() / 2);
        }
    });
    let renamed = cdrom.join("disc-3.bin");
    std::fs::rename(cdrom.join(vols[2].file_name().unwrap()), &renamed).unwrap();
    let given = glob(&cdrom);
    let paths: Vec<&Path> = given.iter().map(PathBuf::as_path).collect();
    let (code, out) = import(tmp.path(), &site, &paths);
    assert_eq!(code, 1, "{out}");
    let cut = vols[1].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("damaged:") && l.contains(&cut)),
        "the truncated volume is named as damaged: {out}"
    );
    assert!(
        !out.contains(&format!("ignoring {}", cdrom.join(&cut).display())),
        "{out}"
    );
    assert!(!out.contains("disc-3.bin: not an airlock volume"), "{out}");
    assert!(out.contains("volume(s) 2 of"), "{out}");
    assert!(
        out.contains("ignoring") && out.contains("README.txt"),
        "{out}"
    );
}

#[test]
fn issue_15_the_index_file_stands_in_for_damaged_index_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vols) = exported(tmp.path());
    let site = tmp.path().join("site");
    // Every volume's copy of the index damaged (a byte just before the trailer), the frames
    // intact.
    let trailer = airlock_bundle::VOLUME_TRAILER_LEN as usize;
    let cdrom = disc(tmp.path(), "cdrom", &vols, |_, bytes| {
        let at = bytes.len() - trailer - 3;
        bytes[at] ^= 0x40;
    });
    // Without the index file there is no index to import by.
    let volumes_only: Vec<PathBuf> = glob(&cdrom)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().ends_with("airlock") && !p.to_string_lossy().contains(".index.")
        })
        .collect();
    let paths: Vec<&Path> = volumes_only.iter().map(PathBuf::as_path).collect();
    let (code, out) = import(tmp.path(), &site, &paths);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no readable bundle index"), "{out}");
    // With it, the import reads it and completes.
    let given = glob(&cdrom);
    let paths: Vec<&Path> = given.iter().map(PathBuf::as_path).collect();
    let (code, out) = import(tmp.path(), &site, &paths);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("read because the volumes' own copies are damaged"),
        "{out}"
    );
    assert!(out.contains("imported bundle shop-1.0"), "{out}");
    assert_verifies(tmp.path(), &site);
}
