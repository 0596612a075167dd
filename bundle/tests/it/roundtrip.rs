//! Export then import through the library: what travels, what is asked for, what is refused.

use std::{cell::RefCell, path::PathBuf};

use airlock_bundle::{
    ImportOptions, NoProgress, Prompt, VOLUME_HEADER_LEN, VOLUME_TRAILER_LEN, import,
    list_volume_files, plan_export, write_export,
};
use airlock_oci::ImageRef;
use airlock_store::Verify;

use crate::common::{export, image, open, opts};

#[test]
fn referrers_travel_unless_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    let (manifest, sig, _) = image(&vendor, "shop/web", "1.0", 1);
    for (referrers, name) in [(true, "with"), (false, "without")] {
        let out = tmp.path().join(name);
        let vols = export(
            &vendor,
            &["shop/web:1.0"],
            &opts(&out, name, 1 << 30, referrers),
        );
        let site = open(&tmp.path().join(format!("site-{name}")));
        let report = import(&site, &vols, &crate::common::unsigned(), &NoProgress).unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(site.tag("shop/web", "1.0").unwrap(), Some(manifest.clone()));
        let found = site.referrers("shop/web", &manifest).unwrap();
        if referrers {
            assert_eq!(found, vec![(sig.clone(), b"{\"descriptor\":1}".to_vec())]);
        } else {
            assert!(found.is_empty());
            assert!(!site.has_blob(&sig).unwrap());
        }
        assert!(site.verify(Verify::Full).unwrap().is_clean());
    }
}

#[test]
fn a_chunk_shared_by_layers_ships_once() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    image(&vendor, "shop/web", "1.0", 2);
    let refs = vec!["shop/web:1.0".parse::<ImageRef>().unwrap()];
    let o = opts(&tmp.path().join("out"), "b", 1 << 30, true);
    let plan = plan_export(&vendor, &refs, &o).unwrap();
    let mut ids: Vec<_> = plan.chunks.iter().map(|(id, _)| *id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no chunk twice");
    // The 300 kB run both layers start with is shipped once (the 800 kB of layers need
    // 500 kB and the chunk where the second layer's new part begins).
    assert!(plan.chunk_bytes < 600_000, "{}", plan.chunk_bytes);
}

/// Hands out the volumes of a directory one by one, as an operator swapping discs would.
struct Discs {
    left: RefCell<Vec<PathBuf>>,
    asked: RefCell<Vec<Vec<u32>>>,
}

impl Prompt for Discs {
    fn next_volume(&self, _bundle: &str, missing: &[u32], _count: u32) -> Option<PathBuf> {
        self.asked.borrow_mut().push(missing.to_vec());
        self.left.borrow_mut().pop()
    }
}

#[test]
fn an_operator_is_asked_for_each_missing_disc_in_turn() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    let (manifest, _, _) = image(&vendor, "shop/web", "1.0", 3);
    let vols = export(
        &vendor,
        &["shop/web:1.0"],
        &opts(&tmp.path().join("out"), "discs", 200_000, true),
    );
    assert!(vols.len() >= 3, "{} volumes", vols.len());
    let site = open(&tmp.path().join("site"));
    let discs = Discs {
        left: RefCell::new(vols[1..].to_vec()),
        asked: RefCell::new(Vec::new()),
    };
    let opts = ImportOptions {
        prompt: Some(&discs),
        dry_run: false,
        trust: airlock_bundle::Trust::allow_unsigned(),
    };
    let report = import(&site, &vols[..1], &opts, &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let asked = discs.asked.borrow();
    assert_eq!(asked.len(), vols.len() - 1, "asked once per missing disc");
    assert!(asked[0].len() >= asked[asked.len() - 1].len());
    assert_eq!(site.tag("shop/web", "1.0").unwrap(), Some(manifest));
}

#[test]
fn a_volume_whose_index_copy_is_cut_off_uses_another_volumes_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    let (manifest, _, _) = image(&vendor, "shop/web", "1.0", 4);
    let out = tmp.path().join("out");
    let vols = export(
        &vendor,
        &["shop/web:1.0"],
        &opts(&out, "cut", 250_000, true),
    );
    assert!(vols.len() >= 2);
    // Cut the trailer off the first volume: its index copy can no longer be found.
    let first = std::fs::read(&vols[0]).unwrap();
    let cut = first.len() - VOLUME_TRAILER_LEN as usize - 10;
    std::fs::write(&vols[0], &first[..cut]).unwrap();
    let site = open(&tmp.path().join("site"));
    // Alone, it names what it is and asks for a volume with an index.
    let err = import(&site, &vols[..1], &crate::common::unsigned(), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("no readable bundle index"),
        "{err}"
    );
    // With the others it completes (its frames are read, the index comes from volume 2).
    let report = import(&site, &vols, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(site.tag("shop/web", "1.0").unwrap(), Some(manifest));
    let listed = list_volume_files(&out).unwrap();
    assert_eq!(listed.len(), vols.len());
}

#[test]
fn exporting_over_an_existing_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    image(&vendor, "shop/web", "1.0", 5);
    let out = tmp.path().join("out");
    let o = opts(&out, "same", 1 << 30, true);
    export(&vendor, &["shop/web:1.0"], &o);
    let refs = vec!["shop/web:1.0".parse::<ImageRef>().unwrap()];
    let plan = plan_export(&vendor, &refs, &o).unwrap();
    let err = write_export(&vendor, plan, &o, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn chunks_collected_between_two_runs_are_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    let (manifest, _, _) = image(&vendor, "shop/web", "1.0", 6);
    let vols = export(
        &vendor,
        &["shop/web:1.0"],
        &opts(&tmp.path().join("out"), "gc", 200_000, true),
    );
    assert!(vols.len() >= 3);
    let site = open(&tmp.path().join("site"));
    let first = import(&site, &vols[..2], &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(!first.is_complete());
    // No blob references the chunks of an unfinished import yet: GC takes them.
    let gc = airlock_store::GcOptions {
        keep_tag_history: std::time::Duration::ZERO,
        upload_grace: std::time::Duration::ZERO,
        keep_app_versions: 3,
    };
    let plan = site.plan_gc(gc).unwrap();
    assert!(plan.chunks > 0, "{plan:?}");
    site.apply_gc(&plan).unwrap();
    // Everything again: the volumes whose chunks went are read again.
    let report = import(&site, &vols, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(site.tag("shop/web", "1.0").unwrap(), Some(manifest));
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_5_damage_is_named_even_when_the_store_holds_what_it_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let vendor = open(&tmp.path().join("vendor"));
    let (manifest, _, _) = image(&vendor, "shop/web", "1.0", 7);
    let vols = export(
        &vendor,
        &["shop/web:1.0"],
        &opts(&tmp.path().join("out"), "held", 200_000, true),
    );
    assert!(vols.len() >= 3, "{} volumes", vols.len());
    let site = open(&tmp.path().join("site"));
    // Volumes 2 and 3 come in intact first (another disc, an earlier run, another bundle).
    let first = import(&site, &vols[1..3], &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(!first.is_complete());
    assert!(first.bundles[0].damaged.is_empty(), "{first:?}");
    // Copies with a flipped byte in volume 2's first frame and in volume 3's index copy.
    let dir = tmp.path().join("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    let mut given = Vec::new();
    for (i, v) in vols.iter().enumerate() {
        let mut bytes = std::fs::read(v).unwrap();
        if i == 1 {
            bytes[VOLUME_HEADER_LEN as usize + 100] ^= 0x01;
        }
        if i == 2 {
            let at = bytes.len() - VOLUME_TRAILER_LEN as usize + 8;
            let index_offset = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            bytes[index_offset as usize + 10] ^= 0x01;
        }
        let copy = dir.join(v.file_name().unwrap());
        std::fs::write(&copy, &bytes).unwrap();
        given.push(copy);
    }
    // The import needs neither, and completes; both are named all the same.
    let report = import(&site, &given, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let damaged = &report.bundles[0].damaged;
    assert!(
        damaged
            .iter()
            .any(|d| d.path == given[1] && d.volume == 2 && d.offset == VOLUME_HEADER_LEN),
        "{damaged:?}"
    );
    assert!(
        damaged
            .iter()
            .any(|d| d.path == given[2] && d.volume == 3 && d.what.contains("index")),
        "{damaged:?}"
    );
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    assert_eq!(site.tag("shop/web", "1.0").unwrap(), Some(manifest));
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}
