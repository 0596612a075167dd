//! Issue 15, names: an image added as `acme/gateway:1.0.0` is stored as `docker.io/acme/gateway`
//! (what containerd's docker.io mirror asks for) and named `acme/gateway` by `ls`, `export`,
//! `diff`, `add --as` and a direct pull alike; a short name of two repositories is an error
//! naming both; stores of earlier versions list as before.

use std::path::{Path, PathBuf};

use airlock_benches::containerd::Containerd;
use airlock_conformance::{Image, ImageBuilder, write_oci_layout};
use serde_json::Value;

use crate::{
    add_skopeo::Served,
    common::{find_tool, stderr, stdout},
    content::{add, ls, repo_count, tag_digest},
};

/// `airlock --data DATA ARGS`, which must succeed; its stdout.
fn ok(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let o = add(cwd, data, args);
    assert!(
        o.status.success(),
        "airlock {args:?}: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// `airlock --data DATA ARGS`, which must fail with exit 2; its stderr.
fn exit_2(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let o = add(cwd, data, args);
    assert_eq!(o.status.code(), Some(2), "airlock {args:?}: {}", stdout(&o));
    stderr(&o)
}

/// An OCI layout at `dir` holding `image`, its `index.json` entry named `name`.
fn layout(dir: &Path, name: &str, image: &Image) -> String {
    write_oci_layout(dir, &[(name, image)]).unwrap();
    format!("oci:{}", dir.display())
}

/// The entry of `ls --json` for a stored repository.
fn listed<'a>(ls: &'a Value, stored: &str) -> &'a Value {
    ls["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == stored)
        .unwrap_or_else(|| panic!("{stored} not listed: {ls:#}"))
}

#[test]
fn issue_15_an_image_added_as_acme_gateway_is_named_so_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, data) = (tmp.path(), tmp.path().join("data"));
    let v1 = ImageBuilder::new().layers(2).layer_bytes(50_000).build();
    let release = layout(&cwd.join("release"), "acme/gateway:1.0.0", &v1);
    ok(cwd, &data, &["add", &release]);

    // ls: stored fully qualified, the direct name beside it.
    let listing = ls(cwd, &data);
    let gateway = listed(&listing, "docker.io/acme/gateway");
    assert_eq!(gateway["direct"], "acme/gateway");
    assert_eq!(
        tag_digest(&listing, "docker.io/acme/gateway", "1.0.0").as_deref(),
        Some(v1.manifest.digest.as_str())
    );
    let text = ok(cwd, &data, &["ls"]);
    assert_eq!(
        text,
        format!(
            "acme/gateway:1.0.0  {}  oci-manifest  (stored as docker.io/acme/gateway)\n",
            v1.manifest.digest
        )
    );
    for prefix in ["acme/", "docker.io/acme"] {
        assert!(
            ok(cwd, &data, &["ls", prefix]).starts_with("acme/gateway:1.0.0"),
            "ls {prefix}"
        );
    }
    assert_eq!(ok(cwd, &data, &["ls", "ghcr.io/"]), "");

    // add --as the short name: into the same repository.
    let v2 = ImageBuilder::new().layers(2).layer_bytes(50_000).build();
    let next = layout(&cwd.join("next"), "v2", &v2);
    ok(cwd, &data, &["add", &next, "--as", "acme/gateway:1.0.1"]);
    let listing = ls(cwd, &data);
    assert_eq!(repo_count(&listing), 1, "{listing:#}");
    assert_eq!(
        tag_digest(&listing, "docker.io/acme/gateway", "1.0.1").as_deref(),
        Some(v2.manifest.digest.as_str())
    );

    // An app file's `as:` the same, and its index names the image as stored.
    std::fs::write(
        cwd.join("app.yaml"),
        "name: gw\nversion: '1'\nimages:\n  - source: oci:next:v2\n    as: acme/gateway:1.0.1-app\n",
    )
    .unwrap();
    ok(cwd, &data, &["add", "-f", "app.yaml"]);
    let listing = ls(cwd, &data);
    assert_eq!(
        tag_digest(&listing, "docker.io/acme/gateway", "1.0.1-app").as_deref(),
        Some(v2.manifest.digest.as_str()),
        "{listing:#}"
    );

    // export: by the short name, a digest, or the full name; the bundle names what is stored.
    for reference in [
        "acme/gateway:1.0.0".to_owned(),
        format!("acme/gateway@{}", v1.manifest.digest),
        "docker.io/acme/gateway:1.0.0".to_owned(),
        "index.docker.io/acme/gateway:1.0.0".to_owned(),
    ] {
        let plan = ok(
            cwd,
            &data,
            &["--json", "export", &reference, "--out", "out", "--dry-run"],
        );
        let plan: Value = serde_json::from_str(&plan).unwrap();
        assert_eq!(
            plan["images"][0]["digest"],
            v1.manifest.digest.as_str(),
            "{reference}: {plan:#}"
        );
        assert!(
            plan["images"][0]["ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("docker.io/acme/gateway")),
            "{reference}: {plan:#}"
        );
    }
    ok(
        cwd,
        &data,
        &[
            "export",
            "acme/gateway:1.0.0",
            "--out",
            "out",
            "--no-binary",
            "--volume-size",
            "2GiB",
            "--level",
            "1",
        ],
    );
    assert!(cwd.join("out/gateway-1.0.0.001.airlock").is_file());

    // diff: short names on both sides, or one of each.
    let diff = ok(
        cwd,
        &data,
        &[
            "--json",
            "diff",
            "acme/gateway:1.0.0",
            "docker.io/acme/gateway:1.0.1",
        ],
    );
    let diff: Value = serde_json::from_str(&diff).unwrap();
    assert_eq!(diff["images"]["changed"], 1, "{diff:#}");
    assert_eq!(
        diff["changed"][0]["from"]["digest"],
        v1.manifest.digest.as_str()
    );
    assert_eq!(
        diff["changed"][0]["to"]["digest"],
        v2.manifest.digest.as_str()
    );

    // Unknown names are still named as written.
    let err = exit_2(cwd, &data, &["export", "acme/other:1", "--out", "out2"]);
    assert!(err.contains("acme/other:1"), "{err}");
}

#[test]
fn issue_15_a_short_name_of_two_repositories_exits_2_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, data) = (tmp.path(), tmp.path().join("data"));
    // First under the literal path (as a push without ns stores it), then added by its name.
    let pushed = ImageBuilder::new().build();
    let early = layout(&cwd.join("early"), "v0", &pushed);
    ok(cwd, &data, &["add", &early, "--as", "acme/gateway:0.9"]);
    let added = ImageBuilder::new().build();
    let release = layout(&cwd.join("release"), "acme/gateway:1.0.0", &added);
    ok(cwd, &data, &["add", &release]);

    let both = "the store holds both acme/gateway and docker.io/acme/gateway";
    for args in [
        vec!["export", "acme/gateway:1.0.0", "--out", "out"],
        vec!["diff", "acme/gateway:0.9", "docker.io/acme/gateway:1.0.0"],
        vec!["add", &early, "--as", "acme/gateway:1"],
    ] {
        let err = exit_2(cwd, &data, &args);
        assert!(err.contains(both), "{args:?}: {err}");
    }
    // The full name is not ambiguous.
    ok(
        cwd,
        &data,
        &[
            "export",
            "docker.io/acme/gateway:1.0.0",
            "--out",
            "out",
            "--dry-run",
        ],
    );
    // ls says which name has no direct pull.
    let listing = ls(cwd, &data);
    assert_eq!(listed(&listing, "acme/gateway")["direct"], Value::Null);
    assert_eq!(
        listed(&listing, "docker.io/acme/gateway")["direct"],
        "docker.io/acme/gateway"
    );
    let text = ok(cwd, &data, &["ls"]);
    assert!(
        text.contains(&format!(
            "acme/gateway:0.9  {}  oci-manifest  (no direct pull: acme/gateway also means \
             docker.io/acme/gateway)\n",
            pushed.manifest.digest
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "docker.io/acme/gateway:1.0.0  {}  oci-manifest\n",
            added.manifest.digest
        )),
        "{text}"
    );
}

#[test]
fn issue_15_stores_of_earlier_versions_list_the_same() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/golden/store-v2");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&golden, &data);
    let then: Value =
        serde_json::from_slice(&std::fs::read(golden.join("ls.json")).unwrap()).unwrap();
    let now = ls(tmp.path(), &data);
    let repos = |v: &Value| -> Vec<(Value, Value)> {
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["repository"].clone(), r["tags"].clone()))
            .collect()
    };
    assert_eq!(repos(&now), repos(&then));
    assert_eq!(listed(&now, "golden/app")["direct"], "golden/app");
    ok(
        tmp.path(),
        &data,
        &["export", "golden/app:1.1", "--out", "out", "--dry-run"],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Makes `http://ADDR` the only host containerd pulls and resolves `registry`'s images from, in
/// plain HTTP: the registry itself when ADDR is `registry`, else a mirror (asked with
/// `?ns=REGISTRY`). The registry's own entry keeps only `push`, so no pull leaves the machine.
fn write_hosts_toml(hosts: &Path, registry: &str, addr: &str) {
    let upstream = match registry {
        "docker.io" => "registry-1.docker.io",
        other => other,
    };
    std::fs::create_dir_all(hosts.join(registry)).unwrap();
    std::fs::write(
        hosts.join(registry).join("hosts.toml"),
        format!(
            "server = \"https://{upstream}\"\ncapabilities = [\"push\"]\n\n\
             [host.\"http://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap();
}

#[test]
fn issue_15_containerd_pulls_the_added_image_by_the_name_it_was_added_under() {
    let (Some(containerd), Some(ctr)) = (
        find_tool("containerd", "containerd"),
        find_tool("ctr", "containerd"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, data) = (tmp.path(), tmp.path().join("data"));
    let image = ImageBuilder::new().layers(2).layer_bytes(100_000).build();
    let release = layout(&cwd.join("release"), "acme/gateway:1.0.0", &image);
    ok(cwd, &data, &["add", &release]);
    let served = Served::start(cwd, &data);
    // Under /tmp: containerd's socket path must fit sun_path.
    let node = PathBuf::from(format!("/tmp/al-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&node);
    let daemon = Containerd::start(&containerd, &ctr, &node);
    let hosts = cwd.join("certs.d");

    // Directly, as from any registry the image was pushed to.
    write_hosts_toml(&hosts, &served.addr, &served.addr);
    let direct = format!("{}/acme/gateway:1.0.0", served.addr);
    let dump = daemon.pull_with_hosts(&direct, "native", &hosts);
    assert!(!dump.contains("ns="), "not a mirror pull:\n{dump}");
    assert_eq!(
        daemon.image_digest(&direct).as_deref(),
        Some(image.manifest.digest.as_str())
    );

    // Through a docker.io mirror, as a cluster pulling `acme/gateway:1.0.0` does.
    write_hosts_toml(&hosts, "docker.io", &served.addr);
    let mirrored = "docker.io/acme/gateway:1.0.0";
    let dump = daemon.pull_with_hosts(mirrored, "native", &hosts);
    assert!(
        dump.contains("ns=docker.io"),
        "not through the mirror:\n{dump}"
    );
    assert!(
        !dump.contains("registry-1.docker.io"),
        "went to docker.io:\n{dump}"
    );
    assert_eq!(
        daemon.image_digest(mirrored).as_deref(),
        Some(image.manifest.digest.as_str())
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&node);
}
