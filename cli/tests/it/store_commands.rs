use std::fs;

use crate::common::{airlock, filled_store, stderr, stdout};

#[test]
fn du_reports_logical_and_stored_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    filled_store(&data, 3);
    let o = airlock(
        tmp.path(),
        &["--data", data.to_str().unwrap(), "--json", "du"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["blobs"], 3);
    assert_eq!(v["logical_bytes"], 3 * 300 * 1024);
    assert!(v["stored_bytes"].as_u64().unwrap() > 0);
    let o = airlock(tmp.path(), &["--data", data.to_str().unwrap(), "du"]);
    assert!(stdout(&o).contains("blobs      3"), "{}", stdout(&o));
}

#[test]
fn du_on_missing_store_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = airlock(tmp.path(), &["--data", "nowhere", "du"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
}

#[test]
fn verify_clean_store_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    filled_store(&data, 2);
    let o = airlock(tmp.path(), &["--data", data.to_str().unwrap(), "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("clean"));
}

#[test]
fn verify_names_a_flipped_byte_and_exits_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let blobs = filled_store(&data, 2);
    let pack = find_pack(&data);
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(&pack, &bytes).unwrap();
    let o = airlock(
        tmp.path(),
        &["--data", data.to_str().unwrap(), "--json", "verify"],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["clean"], false);
    let defects = v["defects"].as_array().unwrap();
    assert!(!defects.is_empty());
    let text = defects
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let name = pack.file_stem().unwrap().to_str().unwrap();
    assert!(text.contains(name), "defects name the pack: {text}");
    assert!(text.contains("offset"), "{text}");
    assert!(
        blobs.iter().any(|(d, _)| text.contains(&d.to_string())),
        "defects name an affected blob: {text}"
    );
}

#[test]
fn gc_dry_run_changes_nothing_then_gc_frees_untagged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    filled_store(&data, 1);
    // A blob nobody links: GC removes it once the upload grace period is over.
    {
        let store =
            airlock_store::Store::open(&data, airlock_store::StoreOptions::default()).unwrap();
        let orphan = crate::common::bytes(99, 200 * 1024);
        let d = airlock_store::Digest::sha256(&orphan);
        store.put_blob(&d, &orphan[..], Default::default()).unwrap();
    }
    fs::write(
        tmp.path().join("airlock.toml"),
        "[gc]\nupload_grace = \"1m\"\n",
    )
    .unwrap();
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--json",
        "gc",
        "--dry-run",
    ];
    let o = airlock(tmp.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["dry_run"], true);
    // Blobs just written are inside the grace period: nothing to remove yet.
    assert_eq!(v["blobs"].as_array().unwrap().len(), 0, "{v}");
    let o = airlock(tmp.path(), &["--data", data.to_str().unwrap(), "gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed 0 blobs"), "{}", stdout(&o));
    let o = airlock(tmp.path(), &["--data", data.to_str().unwrap(), "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

fn find_pack(data: &std::path::Path) -> std::path::PathBuf {
    let mut packs = Vec::new();
    for sub in fs::read_dir(data.join("packs")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            packs.push(f.unwrap().path());
        }
    }
    packs.sort();
    packs.pop().expect("a pack")
}

/// Issue 14: `du` shows the blob cache apart from the store; `verify` re-hashes its files and
/// drops a bad one with a warning, exit 0 (a copy is damaged, nothing stored is); the layer is
/// still served, rebuilt from the store.
#[test]
fn issue_14_du_and_verify_show_and_check_the_cache() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let file = b"a line of a file in a layer\n".repeat(20_000);
    h.set_size(file.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "etc/file", &file[..]).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&tar.into_inner().unwrap()).unwrap();
    let gz = e.finish().unwrap();
    let d = airlock_store::Digest::sha256(&gz);
    {
        // The default policy, `import`: the put caches the layer.
        let store = airlock_store::Store::open(&data, Default::default()).unwrap();
        store.put_blob(&d, &gz[..], Default::default()).unwrap();
    }
    let data_arg = data.to_str().unwrap();
    let o = airlock(tmp.path(), &["--data", data_arg, "--json", "du"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["cache_files"].as_u64(), v["cache_bytes"].as_u64()),
        (Some(1), Some(gz.len() as u64))
    );
    // Not counted as stored: the cache is never a source of truth.
    let stored = v["pack_bytes"].as_u64().unwrap() + v["index_bytes"].as_u64().unwrap();
    assert_eq!(v["stored_bytes"].as_u64(), Some(stored));
    let o = airlock(tmp.path(), &["--data", data_arg, "du"]);
    assert!(stdout(&o).contains("cache      "), "{}", stdout(&o));

    let cached = data.join("cache").join(format!("sha256-{}", d.hex()));
    let mut bytes = fs::read(&cached).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&cached, &bytes).unwrap();
    let o = airlock(tmp.path(), &["--data", data_arg, "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("warning: cache file") && text.contains(&d.hex()[..12]),
        "{text}"
    );
    assert!(!cached.exists());
    let o = airlock(tmp.path(), &["--data", data_arg, "--json", "verify"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["clean"].as_bool(), v["cache"]["files"].as_u64()),
        (Some(true), Some(0))
    );

    let store = airlock_store::Store::open(&data, Default::default()).unwrap();
    let mut back = Vec::new();
    store.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == gz);
}
