//! Issue 17: `export --platform` and `add --platform`. A multi-platform index (linux/amd64 with
//! a buildx attestation, linux/arm64/v8, linux/ppc64le) travels byte for byte with only the
//! chosen platforms' manifests and blobs; the site lists, verifies, counts, collects and serves
//! it as intended, and containerd pulls the chosen platform by tag.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use airlock_benches::containerd::Containerd;
use airlock_conformance::{Blob, random_layer};
use serde_json::{Value, json};

use crate::{
    add_skopeo::Served,
    common::{airlock, find_tool, stderr, stdout},
    content::{read_blob, write},
};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One platform's image: config, layers, manifest, as an index entry describes it.
#[derive(Clone)]
struct PlatformImage {
    config: Blob,
    layers: Vec<Blob>,
    manifest: Blob,
    platform: Value,
}

impl PlatformImage {
    fn new(os: &str, arch: &str, variant: Option<&str>) -> PlatformImage {
        let (layers, diff_ids): (Vec<Blob>, Vec<String>) = (0..2)
            .map(|_| random_layer(OCI_LAYER_GZIP, 2, 20_000))
            .unzip();
        let mut platform = json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        let mut config = platform.clone();
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        config["config"] = json!({"Env": ["PATH=/usr/bin:/bin"]});
        let config = Blob::json(OCI_CONFIG, &config);
        let manifest = Blob::json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
            }),
        );
        PlatformImage {
            config,
            layers,
            manifest,
            platform,
        }
    }

    fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config, &self.manifest];
        v.extend(&self.layers);
        v
    }

    /// An OCI layout holding this image alone, named `name`.
    fn layout(&self, dir: &Path, name: &str) -> String {
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        for b in self.blobs() {
            let (alg, hex) = b.digest.split_once(':').unwrap();
            write(&dir.join("blobs").join(alg).join(hex), &b.bytes);
        }
        let mut d = self.manifest.descriptor();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]});
        write(&dir.join("index.json"), index.to_string().as_bytes());
        format!("oci:{}", dir.display())
    }
}

/// A three-platform index with an attestation of the amd64 image, written as an OCI layout
/// naming it `name`.
struct MultiPlatform {
    amd64: PlatformImage,
    arm64: PlatformImage,
    ppc64le: PlatformImage,
    attestation: Blob,
    attestation_layer: Blob,
    index: Blob,
}

impl MultiPlatform {
    fn new() -> MultiPlatform {
        MultiPlatform::with(PlatformImage::new("linux", "arm64", Some("v8")))
    }

    /// A fresh amd64 and ppc64le image beside a given arm64 one.
    fn with(arm64: PlatformImage) -> MultiPlatform {
        let amd64 = PlatformImage::new("linux", "amd64", None);
        let ppc64le = PlatformImage::new("linux", "ppc64le", None);
        let attestation_layer = Blob::new(
            "application/vnd.in-toto+json",
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v0.1","subject":"{}"}}"#,
                amd64.manifest.digest
            )
            .into_bytes(),
        );
        let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
        let attestation = Blob::json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": empty.descriptor(),
                "layers": [attestation_layer.descriptor()],
            }),
        );
        let entry = |i: &PlatformImage| {
            let mut d = i.manifest.descriptor();
            d["platform"] = i.platform.clone();
            d
        };
        let mut att = attestation.descriptor();
        att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
        att["annotations"] = json!({
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": amd64.manifest.digest,
        });
        let index = Blob::json(
            OCI_INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [entry(&amd64), entry(&arm64), entry(&ppc64le), att],
            }),
        );
        MultiPlatform {
            amd64,
            arm64,
            ppc64le,
            attestation,
            attestation_layer,
            index,
        }
    }

    fn layout(&self, dir: &Path, name: &str) -> String {
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
        let mut blobs: Vec<&Blob> = vec![
            &self.index,
            &self.attestation,
            &self.attestation_layer,
            &empty,
        ];
        for i in [&self.amd64, &self.arm64, &self.ppc64le] {
            blobs.extend(i.blobs());
        }
        for b in blobs {
            let (alg, hex) = b.digest.split_once(':').unwrap();
            write(&dir.join("blobs").join(alg).join(hex), &b.bytes);
        }
        let mut d = self.index.descriptor();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]});
        write(&dir.join("index.json"), index.to_string().as_bytes());
        format!("oci:{}", dir.display())
    }
}

fn run(cwd: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--data", data.to_str().unwrap()];
    all.extend(args);
    airlock(cwd, &all)
}

fn ok(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let o = run(cwd, data, args);
    assert!(
        o.status.success(),
        "airlock {args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn exit_2(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let o = run(cwd, data, args);
    assert_eq!(o.status.code(), Some(2), "airlock {args:?}: {}", stdout(&o));
    stderr(&o)
}

/// Whether the store holds a blob (`read_blob` panics on a missing one).
fn stored(data: &Path, digest: &str) -> bool {
    let store = airlock_store::Store::open(
        data,
        airlock_store::StoreOptions {
            access: airlock_store::Access::ReadOnly,
            ..Default::default()
        },
    )
    .unwrap();
    store.has_blob(&digest.parse().unwrap()).unwrap()
}

/// `GET /v2/REPO/manifests/REF`: status, body.
fn get_manifest(addr: &str, repo: &str, reference: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /v2/{repo}/manifests/{reference} HTTP/1.1\r\nHost: {addr}\r\nAccept: \
         {OCI_MANIFEST}, {OCI_INDEX}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = resp[split + 4..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

#[test]
fn issue_17_export_platform_ships_one_platform_and_the_site_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let (vendor, site) = (cwd.join("vendor"), cwd.join("site"));
    let mp = MultiPlatform::new();
    let src = mp.layout(&cwd.join("layout"), "acme/multi:1.0");
    ok(cwd, &vendor, &["add", &src]);

    // Bad platforms: exit 2, named.
    let err = exit_2(
        cwd,
        &vendor,
        &[
            "export",
            "--no-binary",
            "acme/multi:1.0",
            "--out",
            "x",
            "--platform",
            "linux/s390x",
        ],
    );
    assert!(
        err.contains("no manifest for platform linux/s390x")
            && err.contains("linux/amd64, linux/arm64/v8, linux/ppc64le"),
        "{err}"
    );
    let err = exit_2(
        cwd,
        &vendor,
        &[
            "export",
            "--no-binary",
            "acme/multi:1.0",
            "--out",
            "x",
            "--platform",
            "linux",
        ],
    );
    assert!(err.contains("--platform linux"), "{err}");
    assert!(!cwd.join("x").exists(), "nothing written");

    // The plan, then the bundle.
    let plan: Value = serde_json::from_str(&ok(
        cwd,
        &vendor,
        &[
            "--json",
            "export",
            "--no-binary",
            "acme/multi:1.0",
            "--out",
            "out",
            "--platform",
            "linux/arm64",
            "--dry-run",
        ],
    ))
    .unwrap();
    // amd64, ppc64le and amd64's attestation stay behind.
    assert_eq!(plan["absent_manifests"], 3, "{plan}");
    assert_eq!(plan["platforms"], json!(["linux/arm64"]));
    // The index, the arm64 manifest, its config and two layers.
    assert_eq!(plan["blobs"], 5, "{plan}");
    let text = ok(
        cwd,
        &vendor,
        &[
            "export",
            "--no-binary",
            "acme/multi:1.0",
            "--out",
            "out",
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(text.contains("platforms: linux/arm64"), "{text}");

    // The site.
    ok(cwd, &site, &["import", "--allow-unsigned", "out"]);
    for b in std::iter::once(&mp.index).chain(mp.arm64.blobs()) {
        assert_eq!(read_blob(&site, &b.digest), b.bytes, "{} exact", b.digest);
    }
    for b in mp
        .amd64
        .blobs()
        .into_iter()
        .chain(mp.ppc64le.blobs())
        .chain([&mp.attestation, &mp.attestation_layer])
    {
        assert!(!stored(&site, &b.digest), "{} stayed behind", b.digest);
    }
    let listed = ok(cwd, &site, &["ls"]);
    assert!(
        listed.contains(&format!(
            "acme/multi:1.0  {}  oci-index  linux/arm64/v8 of 3 platforms",
            mp.index.digest
        )),
        "{listed}"
    );
    let json: Value = serde_json::from_str(&ok(cwd, &site, &["--json", "ls"])).unwrap();
    let tag = &json["repositories"][0]["tags"][0];
    assert_eq!(tag["digest"], mp.index.digest.as_str());
    assert_eq!(
        tag["platforms"],
        json!({"present": ["linux/arm64/v8"], "of": 3})
    );
    let verified = ok(cwd, &site, &["verify"]);
    assert!(verified.contains("clean"), "{verified}");
    let du: Value = serde_json::from_str(&ok(cwd, &site, &["--json", "du"])).unwrap();
    assert_eq!(du["blobs"], 5, "{du}");
    let want: u64 = std::iter::once(&mp.index)
        .chain(mp.arm64.blobs())
        .map(|b| b.bytes.len() as u64)
        .sum();
    assert_eq!(du["logical_bytes"], want, "{du}");
    let gc = ok(cwd, &site, &["gc"]);
    assert!(ok(cwd, &site, &["verify"]).contains("clean"), "{gc}");
    for b in std::iter::once(&mp.index).chain(mp.arm64.blobs()) {
        assert_eq!(
            read_blob(&site, &b.digest),
            b.bytes,
            "{} kept by gc",
            b.digest
        );
    }

    // A delta over that bundle for the same platform ships nothing new.
    let delta: Value = serde_json::from_str(&ok(
        cwd,
        &vendor,
        &[
            "--json",
            "export",
            "--no-binary",
            "acme/multi:1.0",
            "--out",
            "delta",
            "--platform",
            "linux/arm64",
            "--since",
            "out/multi-1.0.index.airlock",
            "--dry-run",
        ],
    ))
    .unwrap();
    assert_eq!(delta["chunks"], 0, "{delta}");
    assert_eq!(delta["absent_manifests"], 3, "{delta}");

    // The registry: the index byte for byte, arm64 there, amd64 unknown.
    let served = Served::start(cwd, &site);
    let (status, body) = get_manifest(&served.addr, "acme/multi", "1.0");
    assert_eq!((status, body), (200, mp.index.bytes.to_vec()));
    let (status, body) = get_manifest(&served.addr, "acme/multi", &mp.arm64.manifest.digest);
    assert_eq!((status, body), (200, mp.arm64.manifest.bytes.to_vec()));
    let (status, body) = get_manifest(&served.addr, "acme/multi", &mp.amd64.manifest.digest);
    assert_eq!(status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // containerd pulls the arm64 image by tag.
    let (Some(containerd), Some(ctr)) = (
        find_tool("containerd", "containerd"),
        find_tool("ctr", "containerd"),
    ) else {
        return;
    };
    // Under /tmp: containerd's socket path must fit sun_path.
    let node = PathBuf::from(format!("/tmp/al-plat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&node);
    let daemon = Containerd::start(&containerd, &ctr, &node);
    let reference = format!("{}/acme/multi:1.0", served.addr);
    daemon
        .pull_platform(&reference, "linux/arm64")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        daemon.image_digest(&reference).as_deref(),
        Some(mp.index.digest.as_str())
    );
    let content = daemon.content_digests();
    for b in mp.arm64.blobs() {
        assert!(content.contains(&b.digest), "{} fetched", b.digest);
    }
    assert!(!content.contains(&mp.amd64.manifest.digest));
    let refused = daemon.pull_platform(&reference, "linux/amd64");
    assert!(refused.is_err(), "amd64 is not at the site");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&node);
}

#[test]
fn issue_17_add_platform_keeps_the_index_with_the_chosen_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = cwd.join("data");
    let mp = MultiPlatform::new();
    let src = mp.layout(&cwd.join("layout"), "acme/multi:1.0");

    let err = exit_2(cwd, &data, &["add", &src, "--platform", "linux/s390x"]);
    assert!(
        err.contains("no manifest for platform linux/s390x")
            && err.contains("linux/amd64, linux/arm64/v8, linux/ppc64le"),
        "{err}"
    );
    ok(
        cwd,
        &data,
        &[
            "add",
            &src,
            "--platform",
            "linux/arm64",
            "--platform",
            "linux/amd64",
        ],
    );
    let listed = ok(cwd, &data, &["ls"]);
    assert!(
        listed.contains(&format!(
            "acme/multi:1.0  {}  oci-index  linux/amd64, linux/arm64/v8 of 3 platforms",
            mp.index.digest
        )),
        "{listed}"
    );
    // amd64 brings its attestation; ppc64le stays out.
    for b in std::iter::once(&mp.index)
        .chain(mp.arm64.blobs())
        .chain(mp.amd64.blobs())
        .chain([&mp.attestation, &mp.attestation_layer])
    {
        assert_eq!(read_blob(&data, &b.digest), b.bytes, "{}", b.digest);
    }
    for b in mp.ppc64le.blobs() {
        assert!(!stored(&data, &b.digest), "{} left out", b.digest);
    }
    assert!(ok(cwd, &data, &["verify"]).contains("clean"));

    // Exporting what the store holds, with no --platform: the left-out platform stays absent.
    ok(
        cwd,
        &data,
        &["export", "--no-binary", "acme/multi:1.0", "--out", "out"],
    );
    let site = cwd.join("site");
    ok(cwd, &site, &["import", "--allow-unsigned", "out"]);
    assert!(ok(cwd, &site, &["verify"]).contains("clean"));
    assert!(
        ok(cwd, &site, &["ls"]).contains("linux/amd64, linux/arm64/v8 of 3 platforms"),
        "the site holds what the vendor held"
    );

    // Adding again without --platform brings the rest: the index is then whole.
    let again = ok(cwd, &data, &["add", &src]);
    assert!(!again.contains("already present"), "{again}");
    let listed = ok(cwd, &data, &["ls"]);
    assert!(!listed.contains("platforms"), "{listed}");
    for b in mp.ppc64le.blobs() {
        assert_eq!(read_blob(&data, &b.digest), b.bytes, "{}", b.digest);
    }
    assert!(ok(cwd, &data, &["verify"]).contains("clean"));
}

/// `diff --platform` plans the delta as `export --platform` ships it: a new version whose
/// other platforms changed and whose arm64 image did not ships only its new index to an arm64
/// site.
#[test]
fn issue_17_diff_platform_plans_the_delta_of_the_chosen_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = cwd.join("data");
    let v1 = MultiPlatform::new();
    let v2 = MultiPlatform::with(v1.arm64.clone());
    ok(
        cwd,
        &data,
        &["add", &v1.layout(&cwd.join("v1"), "acme/multi:1.0")],
    );
    ok(
        cwd,
        &data,
        &["add", &v2.layout(&cwd.join("v2"), "acme/multi:2.0")],
    );
    let diff = |extra: &[&str]| -> Value {
        let mut args = vec!["--json", "diff", "acme/multi:1.0", "acme/multi:2.0"];
        args.extend(extra);
        serde_json::from_str(&ok(cwd, &data, &args)).unwrap()
    };
    let arm = diff(&["--platform", "linux/arm64"]);
    assert_eq!(arm["delta"]["new_blobs"], 1, "only the new index: {arm}");
    assert_eq!(
        arm["delta"]["new_blob_bytes"],
        v2.index.bytes.len() as u64,
        "{arm}"
    );
    let all = diff(&[]);
    // The index, amd64's and ppc64le's manifests, configs and layers, the attestation and
    // its statement.
    assert_eq!(all["delta"]["new_blobs"], 1 + 2 * 4 + 2, "{all}");
    let export: Value = serde_json::from_str(&ok(
        cwd,
        &data,
        &[
            "--json",
            "export",
            "--no-binary",
            "acme/multi:2.0",
            "--out",
            "out",
            "--platform",
            "linux/arm64",
            "--dry-run",
        ],
    ))
    .unwrap();
    assert_eq!(export["blobs"], 5, "{export}");

    // A single-platform image of another platform travels whole, with a warning, beside an
    // index that has the platform; alone, the platform is nowhere: exit 2.
    let single = PlatformImage::new("linux", "amd64", None);
    ok(
        cwd,
        &data,
        &["add", &single.layout(&cwd.join("single"), "acme/single:1")],
    );
    let o = run(
        cwd,
        &data,
        &[
            "--json",
            "export",
            "--no-binary",
            "acme/multi:2.0",
            "acme/single:1",
            "--out",
            "out",
            "--platform",
            "linux/arm64",
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = format!(
        "warning: docker.io/acme/single@{} is a single-platform image for linux/amd64, not \
         linux/arm64: it travels whole",
        single.manifest.digest
    );
    assert!(stderr(&o).contains(&warning), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(plan["blobs"], 5 + 4, "{plan}");
    let err = exit_2(
        cwd,
        &data,
        &[
            "export",
            "--no-binary",
            "acme/single:1",
            "--out",
            "out",
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(
        err.contains("no image exported has platform linux/arm64"),
        "{err}"
    );
    let err = exit_2(
        cwd,
        &data,
        &[
            "add",
            &single.layout(&cwd.join("single"), "acme/single:1"),
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(err.contains("no image has platform linux/arm64"), "{err}");
}
