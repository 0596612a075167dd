//! skopeo as a real producer and consumer: `skopeo copy oci:... docker-archive:...`, then
//! `airlock add docker-archive:`, then `airlock serve` with skopeo reading the image back and
//! verifying every digest. Skipped (loudly) when skopeo is not installed; CI installs it.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use airlock_conformance::{ImageBuilder, read_oci_layout, write_oci_layout};

use crate::{
    common::{stderr, stdout},
    content::{add, ls, read_blob, sha256, tag_digest},
};

/// skopeo's path when it is on PATH (see [`crate::common::find_tool`]).
pub(crate) fn find_skopeo() -> Option<PathBuf> {
    crate::common::find_tool("skopeo", "skopeo")
}

pub(crate) fn skopeo(bin: &Path, args: &[&str]) -> String {
    let o = Command::new(bin)
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?} failed\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `airlock serve` over `data` on an ephemeral port; killed on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) addr: String,
}

impl Served {
    pub(crate) fn start(cwd: &Path, data: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args([
                "--data",
                data.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(cwd)
            .env_remove("AIRLOCK_DATA")
            .env_remove("AIRLOCK_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start airlock serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .expect("address")
            .to_owned();
        Served { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

#[test]
fn skopeo_docker_archive_added_then_served_back_with_digests_verified() {
    let Some(bin) = find_skopeo() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let image = ImageBuilder::new().layers(3).layer_bytes(200_000).build();
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    let archive = tmp.path().join("app.tar");
    skopeo(
        &bin,
        &[
            "copy",
            &format!("oci:{}:v1", layout.display()),
            &format!(
                "docker-archive:{}:example.com/team/app:v1",
                archive.display()
            ),
        ],
    );

    let o = add(
        tmp.path(),
        &data,
        &["add", &format!("docker-archive:{}", archive.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    let digest = tag_digest(&listed, "example.com/team/app", "v1").expect("tagged");
    let manifest = read_blob(&data, &digest);
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layers: Vec<String> = parsed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    let diff_ids: Vec<String> = image
        .layers
        .iter()
        .map(|l| sha256(&gunzip(&l.bytes)))
        .collect();
    assert_eq!(
        layers, diff_ids,
        "layers are the uncompressed tars skopeo wrote"
    );

    let served = Served::start(tmp.path(), &data);
    let remote = format!("docker://{}/example.com/team/app:v1", served.addr);
    let raw = skopeo(&bin, &["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(
        raw.trim_end().as_bytes(),
        manifest.as_slice(),
        "inspect --raw"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&skopeo(&bin, &["inspect", "--tls-verify=false", &remote])).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    // Copying out makes skopeo check every blob's digest.
    let out = tmp.path().join("out");
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:v1", out.display()),
        ],
    );
    let back = read_oci_layout(&out, "v1").expect("read the copied layout");
    assert_eq!(back.manifest.digest, digest);
    assert_eq!(back.manifest.bytes.as_ref(), manifest.as_slice());
}

#[test]
fn skopeo_oci_layout_added_then_served_back_byte_exact() {
    let Some(bin) = find_skopeo() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let layout = tmp.path().join("layout");
    let image = ImageBuilder::new().layers(2).layer_bytes(100_000).build();
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            &format!("oci:{}:v1", layout.display()),
            "--as",
            "vendor/app",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let served = Served::start(tmp.path(), &data);
    let out = tmp.path().join("out");
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{}/vendor/app:v1", served.addr),
            &format!("oci:{}:v1", out.display()),
        ],
    );
    let back = read_oci_layout(&out, "v1").expect("read the copied layout");
    assert_eq!(back.manifest, image.manifest);
    assert_eq!(back.config, image.config);
    assert_eq!(back.layers, image.layers);
}
