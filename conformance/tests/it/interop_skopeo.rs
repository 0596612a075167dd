//! skopeo against airlock: an OCI layout copied in and back out must come back byte-exact
//! (same manifest digest, same blob bytes); `inspect` and `list-tags` must see what was pushed.

use std::{path::Path, process::Command, time::Duration};

use airlock_conformance::{ImageBuilder, Registry, read_oci_layout, write_oci_layout};

use crate::{
    server::TestServer,
    tools::{Output, find, run},
};

const DEADLINE: Duration = Duration::from_secs(60);

fn skopeo(skopeo: &Path, args: &[&str]) -> Output {
    // No policy file on the machine is needed to copy unsigned test images.
    run(
        Command::new(skopeo).arg("--insecure-policy").args(args),
        DEADLINE,
    )
}

#[tokio::test]
async fn skopeo_copy_in_and_out_is_byte_exact() {
    let Some(bin) = find("skopeo") else { return };
    let server = TestServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout_in, layout_out) = (tmp.path().join("in"), tmp.path().join("out"));
    let image = ImageBuilder::new().layers(3).layer_bytes(300_000).build();
    let second = ImageBuilder::new().layers(1).build();
    write_oci_layout(&layout_in, &[("v1", &image), ("v2", &second)]).expect("write the layout");

    let remote = format!("{}/interop/skopeo", server.addr);
    let (src, dst) = (
        format!("oci:{}:v1", layout_in.display()),
        format!("docker://{remote}:v1"),
    );
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src,
            &dst,
        ],
    );
    let src2 = format!("oci:{}:v2", layout_in.display());
    let dst2 = format!("docker://{remote}:v2");
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src2,
            &dst2,
        ],
    );

    // What airlock stored is what was in the layout.
    let registry = Registry::new(&server.base);
    for blob in image.blobs() {
        registry
            .pull_blob("interop/skopeo", blob)
            .await
            .expect("blob stored byte-exact");
    }

    let out = format!("oci:{}:v1", layout_out.display());
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &dst,
            &out,
        ],
    );
    let back = read_oci_layout(&layout_out, "v1").expect("read the copied layout");
    assert_eq!(
        back.manifest.digest, image.manifest.digest,
        "manifest digest after the round trip"
    );
    assert_eq!(
        back.manifest.bytes, image.manifest.bytes,
        "manifest bytes after the round trip"
    );
    assert_eq!(back.config, image.config, "config after the round trip");
    assert_eq!(back.layers, image.layers, "layers after the round trip");

    let inspect = skopeo(&bin, &["inspect", "--tls-verify=false", &dst]);
    let inspected: serde_json::Value =
        serde_json::from_str(&inspect.stdout).expect("skopeo inspect prints JSON");
    assert_eq!(
        inspected["Digest"],
        image.manifest.digest.as_str(),
        "{}",
        inspect.stdout
    );
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let expected: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, expected, "skopeo inspect lists the layers");
    let raw = skopeo(&bin, &["inspect", "--raw", "--tls-verify=false", &dst]);
    assert_eq!(
        raw.stdout.trim_end().as_bytes(),
        image.manifest.bytes.as_ref(),
        "inspect --raw"
    );

    let tags = skopeo(
        &bin,
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ],
    );
    let listed: serde_json::Value = serde_json::from_str(&tags.stdout).expect("list-tags JSON");
    assert_eq!(
        listed["Tags"],
        serde_json::json!(["v1", "v2"]),
        "{}",
        tags.stdout
    );
}
