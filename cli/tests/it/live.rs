//! Issue 15: every command while `airlock serve` runs, handed to the server over the data
//! directory's socket: the same output and exit codes, an import and a GC while containerd
//! pulls in a loop, tags that move together.

use std::{
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use airlock_benches::containerd::Containerd;

use crate::{
    bundle::{SERVICES, add_shop, export, ok, run, volumes},
    common::{find_tool, stderr, stdout},
    staged::Serve,
};

/// `GET` or `HEAD` on the registry: the status and the `Docker-Content-Digest` header.
fn head_manifest(addr: &str, repo: &str, tag: &str) -> (u16, Option<String>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {addr}\r\nAccept: \
         application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let digest = resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_owned())
    });
    (status, digest)
}

#[test]
fn issue_15_commands_run_in_the_server_with_the_same_output_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    add_shop(dir, &data, 1);
    let local_ls = ok(run(dir, &data, &["ls"]));
    let local_du = ok(run(dir, &data, &["--json", "du"]));

    let server = Serve::start(dir);
    let socket = data.join("airlock.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is owner-only");

    // Read-only commands print what they print without a server.
    assert_eq!(ok(run(dir, &data, &["ls"])), local_ls);
    let du: serde_json::Value =
        serde_json::from_str(&ok(run(dir, &data, &["--json", "du"]))).unwrap();
    let local: serde_json::Value = serde_json::from_str(&local_du).unwrap();
    assert_eq!(du["blobs"], local["blobs"], "{du}");
    let verify = ok(run(dir, &data, &["verify"]));
    assert!(!verify.contains("problem"), "{verify}");

    // Relative paths are the client's: an inventory written next to it, by the server.
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    ok(run(&sub, &data, &["inventory", "--out", "have.inventory"]));
    assert!(sub.join("have.inventory").is_file());

    // Errors keep their exit code and message; a second server is refused.
    let o = run(dir, &data, &["export", "no/such:tag", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no/such"), "{}", stderr(&o));
    let o = run(dir, &data, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A write: an add through the server, seen by the registry at once.
    let layout = dir.join("layout-1");
    ok(run(
        dir,
        &data,
        &["add", "oci:layout-1:web", "--as", "example.com/extra/web:9"],
    ));
    assert!(layout.is_dir());
    let (status, _) = head_manifest(&server.addr, "example.com/extra/web", "9");
    assert_eq!(status, 200);

    server.stop();
    assert!(!socket.exists(), "the socket goes with the server");
    // Without a server, commands open the store themselves again.
    assert!(ok(run(dir, &data, &["ls"])).contains("example.com/extra/web"));
}

/// The digest each v1 service's tag must pull as, by repository.
fn expected(images: &[airlock_conformance::Image]) -> Vec<(String, String)> {
    SERVICES
        .iter()
        .zip(images)
        .map(|(s, i)| (format!("example.com/shop/{s}"), i.manifest.digest.clone()))
        .collect()
}

#[test]
fn issue_15_containerd_pulls_through_a_delta_import_and_a_gc_on_the_live_server() {
    let (Some(containerd), Some(ctr)) = (
        find_tool("containerd", "containerd"),
        find_tool("ctr", "containerd"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The vendor: version 1 in full, version 2 as a delta over it.
    let vendor = dir.join("vendor");
    let v1 = add_shop(dir, &vendor, 1);
    let full = dir.join("full");
    export(dir, &vendor, &full, &["--name", "shop-1.0", "--level", "3"]);
    let v2 = add_shop(dir, &vendor, 2);
    let delta = dir.join("delta");
    let index = full.join("shop-1.0.index.airlock");
    ok(run(
        dir,
        &vendor,
        &[
            "export",
            "airlock/apps/shop:2.0",
            "--out",
            delta.to_str().unwrap(),
            "--since",
            index.to_str().unwrap(),
            "--no-binary",
            "--level",
            "3",
        ],
    ));

    // The site: version 1 imported, then served.
    let data = dir.join("data");
    let mut args = vec![
        "import".to_owned(),
        "--no-prompt".to_owned(),
        "--allow-unsigned".to_owned(),
    ];
    args.extend(volumes(&full).iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(run(dir, &data, &args));
    let server = Serve::start(dir);
    let addr = server.addr.clone();
    let v2_tags = expected(&v2);
    for (repo, _) in &v2_tags {
        assert_eq!(
            head_manifest(&addr, repo, "2.0").0,
            404,
            "{repo}:2.0 before"
        );
    }

    // containerd pulls version 1 in a loop, each pull fetching every blob again; another loop
    // watches version 2's tags, which must appear all at once.
    let node = PathBuf::from(format!("/tmp/al-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&node);
    let daemon = Arc::new(Containerd::start(&containerd, &ctr, &node));
    let stop = Arc::new(AtomicBool::new(false));
    let pulls = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let puller = {
        let (daemon, stop, pulls, failures) = (
            daemon.clone(),
            stop.clone(),
            pulls.clone(),
            failures.clone(),
        );
        let (addr, want) = (addr.clone(), expected(&v1));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (repo, digest) in &want {
                    let reference = format!("{addr}/{repo}:1.0");
                    match daemon.try_pull(&reference, "native") {
                        Ok(()) => {
                            let got = daemon.image_digest(&reference);
                            if got.as_deref() != Some(digest) {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{reference} pulled as {got:?}, not {digest}"));
                            }
                            daemon.remove_image(&reference);
                            pulls.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            }
        })
    };
    let watcher = {
        let (stop, addr, tags) = (stop.clone(), addr.clone(), v2_tags.clone());
        std::thread::spawn(move || {
            let mut torn = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let seen: Vec<bool> = tags
                    .iter()
                    .map(|(repo, _)| head_manifest(&addr, repo, "2.0").0 == 200)
                    .collect();
                // The checks run one after the other and tags only appear: one seen, then a
                // later one missing, means the import moved them one by one.
                if seen.iter().skip_while(|s| !**s).any(|s| !*s) {
                    torn.push(seen);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            torn
        })
    };
    let wait_pulls = |n: usize| {
        let target = pulls.load(Ordering::Relaxed) + n;
        while pulls.load(Ordering::Relaxed) < target {
            assert!(
                failures.lock().unwrap().is_empty(),
                "{:?}",
                failures.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_pulls(3);

    // The delta import, handed to the server; its tags are there when it returns.
    let before = pulls.load(Ordering::Relaxed);
    let mut args = vec![
        "import".to_owned(),
        "--no-prompt".to_owned(),
        "--allow-unsigned".to_owned(),
    ];
    args.extend(volumes(&delta).iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let imported = run(dir, &data, &args);
    assert!(
        imported.status.success(),
        "{}{}",
        stdout(&imported),
        stderr(&imported)
    );
    for (repo, digest) in &v2_tags {
        let (status, got) = head_manifest(&addr, repo, "2.0");
        assert_eq!(
            (status, got.as_deref()),
            (200, Some(digest.as_str())),
            "{repo}:2.0"
        );
    }
    wait_pulls(3);

    // GC against the live server, then a full verify through it.
    let gc = run(dir, &data, &["gc"]);
    assert!(gc.status.success(), "{}{}", stdout(&gc), stderr(&gc));
    wait_pulls(3);
    let verify = run(dir, &data, &["verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );

    stop.store(true, Ordering::Relaxed);
    puller.join().unwrap();
    let torn = watcher.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "pulls failed: {failures:?}");
    assert!(
        torn.is_empty(),
        "version 2's tags appeared one by one: {torn:?}"
    );
    assert!(pulls.load(Ordering::Relaxed) >= before + 6);
    for (repo, digest) in &v2_tags {
        let reference = format!("{addr}/{repo}:2.0");
        daemon.try_pull(&reference, "native").unwrap();
        assert_eq!(
            daemon.image_digest(&reference).as_deref(),
            Some(digest.as_str())
        );
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&node);
    server.stop();
    let verify = ok(run(dir, &data, &["verify"]));
    assert!(!verify.contains("problem"), "{verify}");
}

/// Issue 15: standard input reaches a command run in the server (`add --password-stdin`),
/// and an upstream add through the server lands in the live registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_password_stdin_reaches_an_add_run_in_the_server() {
    use crate::add_upstream::{Auth, Upstream, push};
    let upstream = Upstream::start_with(Auth::Basic, false);
    let pushed = push(&format!("http://{}", upstream.addr)).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let server = Serve::start(&dir);
    let src = format!("docker://{}/team/app:arm64", upstream.addr);
    let add = |password: &'static [u8]| {
        let (dir, src) = (dir.clone(), src.clone());
        std::thread::spawn(move || {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
                .args([
                    "--data",
                    "data",
                    "add",
                    "--insecure",
                    &src,
                    "--as",
                    "site/app:1",
                ])
                .args(["--username", "user", "--password-stdin"])
                .current_dir(&dir)
                .env_remove("AIRLOCK_DATA")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), password).unwrap();
            child.wait_with_output().unwrap()
        })
        .join()
        .unwrap()
    };
    let o = add(b"wrong\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = add(b"pass\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let (status, digest) = head_manifest(&server.addr, "site/app", "1");
    assert_eq!(status, 200);
    assert_eq!(
        digest.as_deref(),
        Some(pushed.arm64.manifest.digest.as_str())
    );
    server.stop();
}
