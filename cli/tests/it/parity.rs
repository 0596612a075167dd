//! Issue 17: parity volumes through the `airlock` binary. A bundle of 8 tiny data volumes and
//! 2 parity volumes: one data volume missing and another with flipped bytes import exactly;
//! three bad volumes are too many (named, resumable); a damaged parity volume is not used.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use airlock_conformance::Image;
use airlock_store::{Digest, Store, StoreOptions};

use crate::{
    bundle::{SERVICES, add_shop, ok, run},
    content::{ls, tag_digest},
};

/// Volume size giving the shop application 8 data volumes.
const VOLUME_SIZE: &str = "330K";

/// The vendor store, the shop images, and the bundle's data volumes and parity volumes.
struct Exported {
    vendor: PathBuf,
    images: Vec<Image>,
    data: Vec<PathBuf>,
    parity: Vec<PathBuf>,
}

fn export_with_parity(tmp: &Path, parity: u32) -> Exported {
    let vendor = tmp.join("vendor");
    let images = add_shop(tmp, &vendor, 1);
    let out = tmp.join("out");
    let n = parity.to_string();
    let args = [
        "export",
        "--no-binary",
        "airlock/apps/shop:1.0",
        "--out",
        out.to_str().unwrap(),
        "--name",
        "shop",
        "--volume-size",
        VOLUME_SIZE,
        "--level",
        "3",
        "--parity",
        &n,
    ];
    let text = ok(run(tmp, &vendor, &args));
    eprintln!("{text}");
    assert!(
        text.contains(&format!("{parity} parity volume(s)")),
        "{text}"
    );
    let mut data = Vec::new();
    let mut par = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".parity.") {
            par.push(p);
        } else if name.ends_with(".airlock") && !name.contains(".index.") {
            data.push(p);
        }
    }
    data.sort();
    par.sort();
    let cap = 330_000;
    for p in data.iter().chain(&par) {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len <= cap, "{} is {len} bytes, over {cap}", p.display());
    }
    Exported {
        vendor,
        images,
        data,
        parity: par,
    }
}

/// A copy of the bundle in `dir` with `edit` applied to each file (by name); `None` drops it.
fn copy(dir: &Path, files: &[PathBuf], edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(bytes) = edit(&name, std::fs::read(f).unwrap()) {
            std::fs::write(dir.join(&name), bytes).unwrap();
        }
    }
    dir.to_owned()
}

fn flip(mut bytes: Vec<u8>, at: &[usize]) -> Vec<u8> {
    for &i in at {
        bytes[i] ^= 0x5a;
    }
    bytes
}

fn import_json(cwd: &Path, data: &Path, paths: &[&Path]) -> (i32, serde_json::Value, f64) {
    let mut args = vec!["--json", "import", "--no-prompt", "--allow-unsigned"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let started = Instant::now();
    let o = run(cwd, data, &args);
    let secs = started.elapsed().as_secs_f64();
    let text = crate::common::stdout(&o);
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", crate::common::stderr(&o)));
    (o.status.code().unwrap_or(-1), v, secs)
}

fn import_text(cwd: &Path, data: &Path, paths: &[&Path]) -> (i32, String) {
    let mut args = vec!["import", "--no-prompt", "--allow-unsigned"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let o = run(cwd, data, &args);
    let out = format!("{}{}", crate::common::stdout(&o), crate::common::stderr(&o));
    (o.status.code().unwrap_or(-1), out)
}

/// Tags, manifests and blobs of the site are the vendor's, byte for byte; verify is clean.
fn assert_exact(cwd: &Path, vendor: &Path, site: &Path, images: &[Image]) {
    let out = ok(run(cwd, site, &["verify"]));
    assert!(!out.contains("problem"), "{out}");
    let (theirs, ours) = (ls(cwd, vendor), ls(cwd, site));
    for s in SERVICES {
        let repo = format!("example.com/shop/{s}");
        let want = tag_digest(&theirs, &repo, "1.0");
        assert!(want.is_some(), "{repo}");
        assert_eq!(tag_digest(&ours, &repo, "1.0"), want, "{repo}");
    }
    assert_eq!(
        tag_digest(&ours, "airlock/apps/shop", "1.0"),
        tag_digest(&theirs, "airlock/apps/shop", "1.0")
    );
    let store = Store::open(site, StoreOptions::default()).unwrap();
    for img in images {
        for b in img.blobs().chain([&img.manifest]) {
            let d: Digest = b.digest.parse().unwrap();
            let got = store.read_blob(&d).unwrap();
            assert!(got == b.bytes, "blob {} differs", b.digest);
        }
    }
}

#[test]
fn issue_17_a_missing_and_a_damaged_volume_are_rebuilt_from_two_parity_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let e = export_with_parity(tmp.path(), 2);
    assert_eq!(
        e.data.len(),
        8,
        "the test wants 8 data volumes: {:?}",
        e.data
    );
    assert_eq!(e.parity.len(), 2);
    let data_bytes: u64 = e
        .data
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let parity_bytes: u64 = e
        .parity
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    eprintln!(
        "overhead: {parity_bytes} parity bytes / {data_bytes} data bytes = {:.1}%",
        parity_bytes as f64 * 100.0 / data_bytes as f64
    );

    // Without damage, for the time it takes.
    let all: Vec<PathBuf> = e.data.iter().chain(&e.parity).cloned().collect();
    let whole = copy(&tmp.path().join("whole"), &all, |_, b| Some(b));
    let (code, v, plain_secs) = import_json(tmp.path(), &tmp.path().join("site0"), &[&whole]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["bundles"][0]["rebuilt"], serde_json::json!([]), "{v}");

    // Volume 3 lost, volume 6 with flipped bytes in its frames.
    let disc = copy(&tmp.path().join("disc"), &all, |name, b| match name {
        "shop.003.airlock" => None,
        "shop.006.airlock" => Some(flip(b, &[1000, 1001, 60_000, 150_000])),
        _ => Some(b),
    });
    let site = tmp.path().join("site");
    let (code, out) = import_text(tmp.path(), &site, &[&disc]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("volume 3 (not given") && out.contains("rebuilt whole"),
        "{out}"
    );
    assert!(
        out.contains("volume 6 (") && out.contains("damaged stripe(s)"),
        "{out}"
    );
    assert!(out.contains("parity volume(s) 1"), "{out}");
    assert!(out.contains("imported bundle shop"), "{out}");
    assert_exact(tmp.path(), &e.vendor, &site, &e.images);
    // A dry run checks the disc the same way and says what it would rebuild.
    let o = run(
        tmp.path(),
        &site,
        &[
            "import",
            "--dry-run",
            "--allow-unsigned",
            disc.to_str().unwrap(),
        ],
    );
    let dry = crate::common::stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{dry}{}",
        crate::common::stderr(&o)
    );
    assert!(
        dry.contains("volume 3 (not given") && dry.contains("can be rebuilt"),
        "{dry}"
    );
    assert!(dry.contains("intact"), "{dry}");

    // The same in JSON, into a fresh store, timed.
    let (code, v, rebuild_secs) = import_json(tmp.path(), &tmp.path().join("site2"), &[&disc]);
    assert_eq!(code, 0, "{v}");
    let b = &v["bundles"][0];
    let rebuilt = b["rebuilt"].as_array().unwrap();
    assert_eq!(rebuilt.len(), 2, "{v}");
    assert_eq!(rebuilt[0]["volume"], 3);
    assert_eq!(rebuilt[0]["given"], false);
    assert!(
        !rebuilt[0]["from_volumes"]
            .as_array()
            .unwrap()
            .contains(&3.into())
    );
    assert_eq!(rebuilt[1]["volume"], 6);
    assert_eq!(rebuilt[1]["given"], true);
    let stripes = rebuilt[1]["stripes"].as_array().unwrap().len();
    assert!((1..=4).contains(&stripes), "only the damaged stripes: {v}");
    assert_eq!(b["parity_volumes"].as_array().unwrap().len(), 2);
    assert_eq!(b["damaged"], serde_json::json!([]), "{v}");
    eprintln!("import: {plain_secs:.2}s whole, {rebuild_secs:.2}s rebuilding 1 + 1 volumes");
}

#[test]
fn issue_17_three_bad_volumes_with_two_parity_fail_clearly_then_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let e = export_with_parity(tmp.path(), 2);
    let all: Vec<PathBuf> = e.data.iter().chain(&e.parity).cloned().collect();
    let disc = copy(&tmp.path().join("disc"), &all, |name, b| match name {
        "shop.002.airlock" | "shop.005.airlock" | "shop.007.airlock" => None,
        _ => Some(b),
    });
    let site = tmp.path().join("site");
    let (code, out) = import_text(tmp.path(), &site, &[&disc]);
    eprintln!("{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rebuild at most 2"), "{out}");
    assert!(out.contains("volume(s) 2, 5, 7 of 8 still needed"), "{out}");
    assert!(out.contains("no tag has moved"), "{out}");
    let listed = ls(tmp.path(), &site);
    assert!(tag_digest(&listed, "airlock/apps/shop", "1.0").is_none());
    for s in SERVICES {
        assert!(tag_digest(&listed, &format!("example.com/shop/{s}"), "1.0").is_none());
    }
    let verified = ok(run(tmp.path(), &site, &["verify"]));
    assert!(!verified.contains("problem"), "{verified}");
    // Volume 5 found: two missing, two parity volumes: the import completes.
    std::fs::copy(&e.data[4], disc.join("shop.005.airlock")).unwrap();
    let (code, out) = import_text(tmp.path(), &site, &[&disc]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("volume 2 (not given"), "{out}");
    assert!(out.contains("volume 7 (not given"), "{out}");
    assert_exact(tmp.path(), &e.vendor, &site, &e.images);
}

#[test]
fn issue_17_a_damaged_parity_volume_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let e = export_with_parity(tmp.path(), 2);
    let all: Vec<PathBuf> = e.data.iter().chain(&e.parity).cloned().collect();
    // Header of parity 1 flipped; data whole: it is named, not used, and the import works.
    let disc = copy(&tmp.path().join("disc"), &all, |name, b| match name {
        "shop.parity.01.airlock" => Some(flip(b, &[40])),
        _ => Some(b),
    });
    let site = tmp.path().join("site");
    let (code, out) = import_text(tmp.path(), &site, &[&disc]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("shop.parity.01.airlock") && out.contains("not used"),
        "{out}"
    );
    assert_exact(tmp.path(), &e.vendor, &site, &e.images);

    // Shards of parity 1 flipped and volume 4 missing: parity 2 rebuilds it alone, and the
    // stripes where parity 1 fails its checks are named.
    let len = std::fs::metadata(&e.parity[0]).unwrap().len() as usize;
    let disc2 = copy(&tmp.path().join("disc2"), &all, |name, b| match name {
        "shop.004.airlock" => None,
        "shop.parity.01.airlock" => Some(flip(b, &[len - 10, len / 2, len - 70_000])),
        _ => Some(b),
    });
    let site2 = tmp.path().join("site2");
    let (code, v, _) = import_json(tmp.path(), &site2, &[&disc2]);
    assert_eq!(code, 0, "{v}");
    let b = &v["bundles"][0];
    assert_eq!(b["rebuilt"][0]["volume"], 4, "{v}");
    assert_eq!(
        b["rebuilt"][0]["from_parity"],
        serde_json::json!([1, 2]),
        "{v}"
    );
    let problems = b["parity_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert!(
        problems[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("shop.parity.01.airlock")
    );
    assert!(
        problems[0]["error"]
            .as_str()
            .unwrap()
            .contains("fail their checks")
    );
    assert_exact(tmp.path(), &e.vendor, &site2, &e.images);

    // A data volume whose header is damaged cannot be opened: it is rebuilt whole instead.
    let disc3 = copy(&tmp.path().join("disc3"), &all, |name, b| match name {
        "shop.002.airlock" => Some(flip(b, &[20])),
        _ => Some(b),
    });
    let site3 = tmp.path().join("site3");
    let (code, v, _) = import_json(tmp.path(), &site3, &[&disc3]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["bundles"][0]["rebuilt"][0]["volume"], 2, "{v}");
    assert_eq!(v["bundles"][0]["rebuilt"][0]["given"], false, "{v}");
    assert_eq!(v["unreadable"], serde_json::json!([]), "{v}");
    let ignored = v["ignored"].to_string();
    assert!(
        ignored.contains("shop.002.airlock") && ignored.contains("rebuilt from parity instead"),
        "{v}"
    );
    assert_exact(tmp.path(), &e.vendor, &site3, &e.images);

    // The dry run shows the parity volumes of an export.
    let o = run(
        tmp.path(),
        &e.vendor,
        &[
            "export",
            "--no-binary",
            "airlock/apps/shop:1.0",
            "--out",
            tmp.path().join("dry").to_str().unwrap(),
            "--volume-size",
            VOLUME_SIZE,
            "--parity",
            "3",
            "--dry-run",
        ],
    );
    let text = ok(o);
    assert!(text.contains("plus 3 parity volume(s)"), "{text}");
    assert!(text.contains(".parity.03.airlock"), "{text}");
    assert!(!tmp.path().join("dry").exists());
}
