//! Issue 5: `airlock diff A B`, the upgrade preview, over the shop application of the bundle
//! tests (three services over one base; version 2 rebuilds the base and changes the api).

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use crate::{
    bundle::{SERVICES, add_shop, ok, run},
    common::{stderr, stdout},
    content::write,
};

fn diff_json(cwd: &std::path::Path, data: &std::path::Path, a: &str, b: &str) -> Value {
    let out = ok(run(cwd, data, &["--json", "diff", a, b]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn issue_5_diff_of_two_versions_names_changed_layers_and_a_small_delta() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vendor");
    let v1 = add_shop(tmp.path(), &data, 1);
    let v2 = add_shop(tmp.path(), &data, 2);
    let (a, b) = ("airlock/apps/shop:1.0", "airlock/apps/shop:2.0");

    let text = ok(run(tmp.path(), &data, &["diff", a, b]));
    eprintln!("{text}");
    assert!(
        text.contains("3 changed, 0 added, 0 removed, 0 unchanged"),
        "{text}"
    );
    let old: HashSet<&str> = v1
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.digest.as_str()))
        .collect();
    let new_layers: BTreeSet<(&str, u64)> = v2
        .iter()
        .flat_map(|i| &i.layers)
        .filter(|l| !old.contains(l.digest.as_str()))
        .map(|l| (l.digest.as_str(), l.size()))
        .collect();
    assert_eq!(new_layers.len(), 2, "the rebuilt base and the api layer");
    for (d, _) in &new_layers {
        assert!(text.contains(&format!("+ {d}")), "{d} not named:\n{text}");
    }

    let v = diff_json(tmp.path(), &data, a, b);
    assert_eq!(v["images"]["changed"], 3, "{v:#}");
    assert_eq!(v["images"]["unchanged"], 0, "{v:#}");
    for (s, (old, new)) in SERVICES.iter().zip(v1.iter().zip(&v2)) {
        let c = v["changed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["repository"] == format!("example.com/shop/{s}"))
            .unwrap_or_else(|| panic!("{s} not changed: {v:#}"));
        assert_eq!(c["from"]["digest"], old.manifest.digest.as_str());
        assert_eq!(c["to"]["digest"], new.manifest.digest.as_str());
        let added: Vec<&str> = c["layers_added"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        let removed = c["layers_removed"].as_array().unwrap().len();
        if *s == "api" {
            assert_eq!(
                added,
                [new.layers[0].digest.as_str(), new.layers[1].digest.as_str()]
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>(),
                "{s}"
            );
            assert_eq!((removed, c["layers_unchanged"].as_u64()), (2, Some(0)));
        } else {
            assert_eq!(added, [new.layers[0].digest.as_str()], "{s}: the base");
            assert_eq!((removed, c["layers_unchanged"].as_u64()), (1, Some(1)));
        }
        // The configs carry the layers' diff ids: they change with the layers.
        assert_eq!(c["config_changed"], true, "{s}");
    }
    let delta = &v["delta"];
    let chunk_bytes = delta["chunk_bytes"].as_u64().unwrap();
    let changed = delta["changed_layer_bytes"].as_u64().unwrap();
    let compressed: u64 = new_layers.iter().map(|(_, s)| s).sum();
    assert_eq!(changed, compressed, "{delta:#}");
    eprintln!("delta {chunk_bytes} B of chunks for {compressed} B of changed layers");
    assert!(chunk_bytes > 0 && chunk_bytes * 4 < compressed, "{delta:#}");
    assert!(delta["chunks"].as_u64().unwrap() > 0);
    assert!(delta["new_blob_bytes"].as_u64().unwrap() >= compressed);

    // Two plain images are compared as one.
    let api = |v: &str| format!("example.com/shop/api:{v}");
    let v = diff_json(tmp.path(), &data, &api("1.0"), &api("2.0"));
    assert_eq!(v["images"]["changed"], 1, "{v:#}");
    assert_eq!(v["changed"][0]["layers_added"].as_array().unwrap().len(), 2);
    let web = "example.com/shop/web:1.0";
    let same = ok(run(tmp.path(), &data, &["diff", web, web]));
    assert!(
        same.contains("0 changed, 0 added, 0 removed, 1 unchanged"),
        "{same}"
    );
    assert!(same.contains("0 chunk(s)"), "{same}");
}

#[test]
fn issue_5_diff_names_added_and_removed_images_and_unknown_refs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vendor");
    add_shop(tmp.path(), &data, 1);
    add_shop(tmp.path(), &data, 2);
    // Version 3: web and api as in version 2, worker dropped, a cache service added.
    let (l1, l2) = (tmp.path().join("layout-1"), tmp.path().join("layout-2"));
    let app = format!(
        "name: shop\nversion: \"3.0\"\nimages:\n\
         \x20 - source: oci:{l2}:web\n    as: example.com/shop/web:3.0\n\
         \x20 - source: oci:{l2}:api\n    as: example.com/shop/api:3.0\n\
         \x20 - source: oci:{l1}:worker\n    as: example.com/shop/cache:3.0\n",
        l1 = l1.display(),
        l2 = l2.display()
    );
    let file = tmp.path().join("app-3.yaml");
    write(&file, app.as_bytes());
    ok(run(
        tmp.path(),
        &data,
        &["add", "-f", file.to_str().unwrap()],
    ));

    let (a, b) = ("airlock/apps/shop:2.0", "airlock/apps/shop:3.0");
    let text = ok(run(tmp.path(), &data, &["diff", a, b]));
    eprintln!("{text}");
    assert!(
        text.contains("0 changed, 1 added, 1 removed, 2 unchanged"),
        "{text}"
    );
    let line = |word: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(word))
            .unwrap_or_else(|| panic!("no {word} line:\n{text}"))
            .to_owned()
    };
    assert!(line("added").contains("example.com/shop/cache"), "{text}");
    assert!(
        line("removed").contains("example.com/shop/worker"),
        "{text}"
    );
    let v = diff_json(tmp.path(), &data, a, b);
    assert_eq!(v["added"][0]["repository"], "example.com/shop/cache");
    assert_eq!(v["added"][0]["layers"], 2);
    assert_eq!(v["removed"][0]["repository"], "example.com/shop/worker");
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 2);

    // Unknown references are named; exit 2.
    let o = run(tmp.path(), &data, &["diff", a, "airlock/apps/shop:9.0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("airlock/apps/shop:9.0"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("no such tag"), "{}", stderr(&o));
    let o = run(tmp.path(), &data, &["diff", "example.com/shop/web", b]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("example.com/shop/web"),
        "{}",
        stderr(&o)
    );
    let missing = format!("example.com/shop/web@sha256:{}", "0".repeat(64));
    let o = run(tmp.path(), &data, &["--json", "diff", &missing, b]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("\"error\""), "{}", stdout(&o));
    assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
}
