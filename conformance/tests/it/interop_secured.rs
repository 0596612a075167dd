//! Issue 16: real clients against a registry with accounts (made by `htpasswd -B`) over HTTPS
//! (a test CA): skopeo with `--creds` and `--cert-dir`, containerd with `ctr images pull --user`
//! and the CA in its `hosts.toml`, in the token flow and with Basic challenges; and what they
//! are refused: pushes, deletes and pulls the rules do not grant, wrong and missing
//! credentials.

use std::{fs, path::Path, process::Command, time::Duration};

use airlock_conformance::{ImageBuilder, Registry, read_oci_layout, write_oci_layout};
use airlock_registry::Challenge;

use crate::{
    interop_containerd::{Containerd, listed_digest},
    secured::secured,
    tools::{Output, find, run, run_failing},
};

const DEADLINE: Duration = Duration::from_secs(90);

fn skopeo(bin: &Path, args: &[&str]) -> Output {
    run(
        Command::new(bin).arg("--insecure-policy").args(args),
        DEADLINE,
    )
}

fn skopeo_fails(bin: &Path, args: &[&str]) -> Output {
    run_failing(
        Command::new(bin).arg("--insecure-policy").args(args),
        DEADLINE,
    )
}

/// A directory holding only the CA as `ca.crt`, as `--cert-dir` and `hosts.toml` want it.
fn cert_dir(dir: &Path) -> String {
    let certs = dir.join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).unwrap();
    certs.to_str().unwrap().to_owned()
}

fn skopeo_round_trip(challenge: Challenge) {
    let Some(bin) = find("skopeo") else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((server, _)) = secured(dir.path(), challenge) else {
        return;
    };
    let certs = cert_dir(dir.path());
    let image = ImageBuilder::new().layers(2).layer_bytes(200_000).build();
    let layout = dir.path().join("in");
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    let src = format!("oci:{}:v1", layout.display());
    let remote = format!("docker://{}/conformance/skopeo", server.addr);
    let v1 = format!("{remote}:v1");

    // alice pushes; bob may pull but not push, delete or log in with a wrong password.
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &v1,
        ],
    );
    let denied = skopeo_fails(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            "bob:bob-pw",
            &src,
            &format!("{remote}:v2"),
        ],
    );
    let said = format!("{}{}", denied.stdout, denied.stderr).to_lowercase();
    assert!(
        said.contains("denied") || said.contains("unauthorized"),
        "{said}"
    );
    let out = dir.path().join("out");
    skopeo(
        &bin,
        &[
            "copy",
            "--preserve-digests",
            "--src-cert-dir",
            &certs,
            "--src-creds",
            "bob:bob-pw",
            &v1,
            &format!("oci:{}:v1", out.display()),
        ],
    );
    let back = read_oci_layout(&out, "v1").unwrap();
    assert_eq!(back.manifest.digest, image.manifest.digest);
    assert_eq!(back.layers, image.layers);
    skopeo_fails(
        &bin,
        &["inspect", "--cert-dir", &certs, "--creds", "bob:wrong", &v1],
    );
    skopeo_fails(&bin, &["inspect", "--cert-dir", &certs, &v1]);
    skopeo_fails(
        &bin,
        &["delete", "--cert-dir", &certs, "--creds", "bob:bob-pw", &v1],
    );
    let inspected = skopeo(
        &bin,
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            &certs,
            "--creds",
            "bob:bob-pw",
            &v1,
        ],
    );
    assert_eq!(
        inspected.stdout.trim_end().as_bytes(),
        image.manifest.bytes.as_ref()
    );
    skopeo(
        &bin,
        &[
            "delete",
            "--cert-dir",
            &certs,
            "--creds",
            "alice:alice-pw",
            &v1,
        ],
    );
    skopeo_fails(
        &bin,
        &[
            "inspect",
            "--cert-dir",
            &certs,
            "--creds",
            "bob:bob-pw",
            &v1,
        ],
    );
}

#[test]
fn issue_16_skopeo_over_https_with_tokens() {
    skopeo_round_trip(Challenge::Bearer);
}

#[test]
fn issue_16_skopeo_over_https_with_basic_challenges() {
    skopeo_round_trip(Challenge::Basic);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// containerd pulls as bob over HTTPS, with the CA in `hosts.toml`; is refused without
/// credentials and for a repository bob may not pull.
async fn containerd_pulls(challenge: Challenge) {
    let (Some(containerd), Some(ctr)) = (find("containerd"), find("ctr")) else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let Some((server, ca)) = secured(files.path(), challenge) else {
        return;
    };
    let alice = Registry::new(&server.base)
        .with_ca(&ca)
        .unwrap()
        .with_basic("alice", "alice-pw");
    let image = ImageBuilder::new().layers(2).layer_bytes(100_000).build();
    for repo in ["conformance/ctr", "private/ctr"] {
        alice.push_image(repo, "v1", &image).await.unwrap();
    }
    // Under /tmp: the socket path must stay well under the 108 bytes of sun_path.
    let tmp = tempfile::Builder::new()
        .prefix("cd")
        .tempdir_in("/tmp")
        .unwrap();
    let daemon = Containerd::start(&containerd, &ctr, tmp.path());
    let hosts = tmp.path().join("certs.d").join(server.addr.to_string());
    fs::create_dir_all(&hosts).unwrap();
    fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"https://{addr}\"\n\n[host.\"https://{addr}\"]\n  capabilities = \
             [\"pull\", \"resolve\"]\n  ca = \"{ca}\"\n",
            addr = server.addr,
            ca = files.path().join("ca.crt").display()
        ),
    )
    .unwrap();
    let hosts_dir = tmp.path().join("certs.d");
    let hosts_dir = hosts_dir.to_str().unwrap();
    let reference = format!("{}/conformance/ctr:v1", server.addr);
    let pull = |user: Option<&str>, reference: &str| {
        let mut args = vec![
            "images",
            "pull",
            "--snapshotter",
            "native",
            "--hosts-dir",
            hosts_dir,
        ];
        if let Some(user) = user {
            args.extend(["--user", user]);
        }
        args.push(reference);
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()
    };
    daemon.ctr(&ctr, &strs(&pull(Some("bob:bob-pw"), &reference)));
    let images = daemon.ctr(&ctr, &["images", "ls"]);
    assert_eq!(
        listed_digest(&images, &reference).as_deref(),
        Some(image.manifest.digest.as_str()),
        "{}",
        images.stdout
    );
    // No credentials, or an account without access: refused.
    let private = format!("{}/private/ctr:v1", server.addr);
    for args in [
        pull(None, &private),
        pull(Some("bob:bob-pw"), &private),
        pull(Some("bob:nope"), &private),
    ] {
        let failed = daemon.ctr_fails(&ctr, &strs(&args));
        let said = format!("{}{}", failed.stdout, failed.stderr).to_lowercase();
        assert!(
            said.contains("401")
                || said.contains("403")
                || said.contains("unauthorized")
                || said.contains("denied")
                || said.contains("forbidden"),
            "{args:?}: {said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_containerd_pulls_over_https_with_tokens() {
    containerd_pulls(Challenge::Bearer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_containerd_pulls_over_https_with_basic_challenges() {
    containerd_pulls(Challenge::Basic).await;
}
