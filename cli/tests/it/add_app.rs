use airlock_conformance::{ImageBuilder, write_oci_layout};
use airlock_store::{Access, Store, StoreOptions};

use crate::{
    common::{stderr, stdout},
    content::{DockerImage, add, legacy_entries, ls, read_blob, tag_digest, tar_of, write},
};

#[test]
fn app_file_records_the_version_as_an_index_and_again_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let vendor = tmp.path().join("vendor");
    let web = ImageBuilder::new().layers(2).build();
    write_oci_layout(&vendor.join("web-layout"), &[("v1", &web)]).unwrap();
    let worker = DockerImage::new(11, 2);
    write(
        &vendor.join("worker.tar"),
        &tar_of(&legacy_entries(&[(
            &["example.com/shop/worker:1.4.2"],
            &worker,
        )])),
    );
    let app = vendor.join("app.yaml");
    write(
        &app,
        b"# the shop, as shipped\nname: shop\nversion: 1.4.2\nimages:\n  - source: oci:web-layout:v1\n    as: example.com/shop/web:1.4.2\n  - docker-archive:worker.tar\n",
    );
    let file = app.to_str().unwrap();
    let o = add(tmp.path(), &data, &["add", "-f", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("added: app shop 1.4.2"),
        "{}",
        stdout(&o)
    );
    let listed = ls(tmp.path(), &data);
    let index_digest = tag_digest(&listed, "airlock/apps/shop", "1.4.2").expect("app tagged");
    let web_digest = tag_digest(&listed, "example.com/shop/web", "1.4.2").expect("web");
    let worker_digest = tag_digest(&listed, "example.com/shop/worker", "1.4.2").expect("worker");
    assert_eq!(web_digest, web.manifest.digest);

    let index: serde_json::Value =
        serde_json::from_slice(&read_blob(&data, &index_digest)).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["artifactType"], "application/vnd.airlock.app.v1+json");
    assert_eq!(index["annotations"]["io.airlock.app.name"], "shop");
    assert_eq!(index["annotations"]["io.airlock.app.version"], "1.4.2");
    let entries = index["manifests"].as_array().unwrap();
    let refs: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap(),
                e["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            (web_digest.as_str(), "example.com/shop/web:1.4.2"),
            (worker_digest.as_str(), "example.com/shop/worker:1.4.2"),
        ]
    );
    {
        // The app's repository holds everything, so it is pullable as an ordinary index.
        let store = Store::open(
            &data,
            StoreOptions {
                access: Access::ReadOnly,
                ..Default::default()
            },
        )
        .unwrap();
        for d in [&web_digest, &worker_digest, &worker.config_digest()] {
            assert!(
                store
                    .link("airlock/apps/shop", &d.parse().unwrap())
                    .unwrap()
                    .is_some(),
                "{d} linked into the app's repository"
            );
        }
    }

    let o = add(tmp.path(), &data, &["add", "-f", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("already present").count(),
        3,
        "{}",
        stdout(&o)
    );
    assert_eq!(
        tag_digest(&ls(tmp.path(), &data), "airlock/apps/shop", "1.4.2"),
        Some(index_digest)
    );
}

#[test]
fn bad_app_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = tmp.path().join("app.yaml");
    for (text, needle) in [
        ("name: shop\nversion: '1'\nimagez: []\n", "imagez"),
        (
            "name: Shop!\nversion: 1\nimages: [docker://x/y:1]\n",
            "Shop!",
        ),
        ("name: shop\nversion: '1'\nimages: []\n", "empty"),
        ("name: shop\nversion: '1'\nimages: [ftp://x]\n", "ftp://x"),
        ("name: [\n", "app.yaml"),
    ] {
        write(&app, text.as_bytes());
        let o = add(tmp.path(), &data, &["add", "-f", app.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    }
}
