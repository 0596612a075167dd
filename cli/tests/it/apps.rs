//! Issue 18: application versions at a site: imported v1 then v2 (a delta) become current in
//! turn; `apps rollback` moves the current pointer and every image tag v2 moved back to v1's
//! digests (containerd pulls them by tag from `airlock serve`), `apps use` rolls forward, the
//! history names each move and who made it; GC with `keep_app_versions = 1` drops v1 and the
//! chunks only it used, and everything still verifies.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use airlock_benches::containerd::Containerd;
use serde_json::Value;

use crate::{
    bundle::{ok, run, shop, volumes},
    common::{find_tool, stderr, stdout},
    staged::Serve,
};

/// Version `version` of the shop where web and worker are tagged `stable` (moved by every
/// version) and api by its version: the app file's path, and the images' digests by
/// repository.
fn shop_stable(dir: &Path, version: u64) -> (PathBuf, Vec<(String, String)>) {
    let images = shop(dir, version);
    let layout = dir.join(format!("layout-{version}"));
    let mut app = format!("name: shop\nversion: \"{version}.0\"\nimages:\n");
    let mut digests = Vec::new();
    for (s, image) in ["web", "api", "worker"].iter().zip(&images) {
        let tag = if *s == "api" {
            format!("{version}.0")
        } else {
            "stable".to_owned()
        };
        app.push_str(&format!(
            "  - source: oci:{}:{s}\n    as: example.com/shop/{s}:{tag}\n",
            layout.display()
        ));
        digests.push((
            format!("example.com/shop/{s}:{tag}"),
            image.manifest.digest.clone(),
        ));
    }
    let path = dir.join(format!("shop-stable-{version}.yaml"));
    std::fs::write(&path, app).unwrap();
    (path, digests)
}

/// Runs airlock as OS user `user` (its `USER`), in `cwd` on the store `data`.
fn as_user(cwd: &Path, data: &Path, user: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("--data")
        .arg(data)
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_DATA")
        .env("USER", user)
        .output()
        .unwrap()
}

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// Exit 2 with `message` in stderr.
fn refused(o: Output, message: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(message), "{}", stderr(&o));
}

fn current(cwd: &Path, data: &Path) -> (String, Vec<String>) {
    let apps = json(run(cwd, data, &["--json", "apps"]));
    let shop = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shop")
        .unwrap_or_else(|| panic!("{apps}"));
    let versions = shop["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    (
        shop["current"]["version"].as_str().unwrap_or("").to_owned(),
        versions,
    )
}

fn import(cwd: &Path, data: &Path, dir: &Path) {
    let mut args = vec![
        "import".to_owned(),
        "--no-prompt".to_owned(),
        "--allow-unsigned".to_owned(),
    ];
    args.extend(volumes(dir).iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(run(cwd, data, &args));
}

/// containerd pulls each `repo:tag` from the server and gets the expected digest.
fn pulls_as(daemon: &Containerd, addr: &str, want: &[(String, String)]) {
    for (reference, digest) in want {
        let full = format!("{addr}/{reference}");
        daemon.remove_image(&full);
        daemon.pull(&full, "native");
        assert_eq!(
            daemon.image_digest(&full).as_deref(),
            Some(digest.as_str()),
            "{full}"
        );
        daemon.remove_image(&full);
    }
}

fn chunks(cwd: &Path, data: &Path) -> u64 {
    json(run(cwd, data, &["--json", "du"]))["chunks"]
        .as_u64()
        .unwrap()
}

#[test]
fn issue_18_rollback_moves_image_tags_back_and_gc_keeps_the_last_versions() {
    let (Some(containerd), Some(ctr)) = (
        find_tool("containerd", "containerd"),
        find_tool("ctr", "containerd"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The site keeps one version; the upload grace is the shortest allowed.
    std::fs::write(
        dir.join("airlock.toml"),
        "[gc]\nkeep_app_versions = 1\nupload_grace = \"1m\"\n",
    )
    .unwrap();

    // The vendor: v1 added and exported in full; with one version there is nothing to roll
    // back to. Then v2, exported as a delta.
    let vendor = dir.join("vendor");
    let (app1, want1) = shop_stable(dir, 1);
    ok(run(dir, &vendor, &["add", "-f", app1.to_str().unwrap()]));
    refused(
        run(dir, &vendor, &["apps", "rollback", "shop"]),
        "no version was current before 1.0",
    );
    let full = dir.join("full");
    let export = |out: &Path, version: &str, extra: &[&str]| {
        let mut args = vec![
            "export".to_owned(),
            format!("airlock/apps/shop:{version}"),
            "--out".to_owned(),
            out.display().to_string(),
            "--no-binary".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(run(dir, &vendor, &args));
    };
    export(&full, "1.0", &["--name", "shop-1.0"]);
    let (app2, want2) = shop_stable(dir, 2);
    ok(run(dir, &vendor, &["add", "-f", app2.to_str().unwrap()]));
    assert_eq!(current(dir, &vendor).0, "2.0");
    let delta = dir.join("delta");
    let since = full.join("shop-1.0.index.airlock");
    export(
        &delta,
        "2.0",
        &["--name", "shop-2.0", "--since", since.to_str().unwrap()],
    );
    // web and worker moved their `stable` tag; api did not (each version has its own tag).
    assert_ne!(want1[0].1, want2[0].1);
    assert_ne!(want1[2].1, want2[2].1);

    // The site: v1 imported, then v2; each is current once imported.
    let data = dir.join("data");
    import(dir, &data, &full);
    let v1_imported = Instant::now();
    assert_eq!(current(dir, &data), ("1.0".to_owned(), vec!["1.0".into()]));
    import(dir, &data, &delta);
    assert_eq!(
        current(dir, &data),
        ("2.0".to_owned(), vec!["2.0".into(), "1.0".into()])
    );

    let server = Serve::start(dir);
    let addr = server.addr.clone();
    let node = PathBuf::from(format!("/tmp/al-apps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&node);
    let daemon = Containerd::start(&containerd, &ctr, &node);
    pulls_as(&daemon, &addr, &want2);

    // Errors first: an unknown application, an unknown version, exit 2 each.
    refused(
        run(dir, &data, &["apps", "rollback", "nosuch"]),
        "no application \"nosuch\"",
    );
    refused(
        run(dir, &data, &["apps", "rollback", "shop", "--to", "9.9"]),
        "application shop has no version \"9.9\"",
    );

    // The dry run names each tag move (old -> new) and changes nothing.
    let dry = ok(run(dir, &data, &["apps", "rollback", "shop", "--dry-run"]));
    for i in [0, 2] {
        let line = format!("{} {} -> {}", want2[i].0, want2[i].1, want1[i].1);
        assert!(dry.contains(&line), "{line} missing from:\n{dry}");
    }
    assert!(!dry.contains("example.com/shop/api"), "{dry}");
    assert_eq!(current(dir, &data).0, "2.0");
    pulls_as(&daemon, &addr, &want2);

    // The rollback, by another user than the server's: v1 is current and pulls by tag.
    let rolled = as_user(dir, &data, "site-operator", &["apps", "rollback", "shop"]);
    let rolled = ok(rolled);
    assert!(rolled.contains("1.0 is current (was 2.0)"), "{rolled}");
    assert_eq!(current(dir, &data).0, "1.0");
    pulls_as(&daemon, &addr, &want1);

    // Rolling forward: `apps use`.
    let forward = as_user(dir, &data, "night-shift", &["apps", "use", "shop", "2.0"]);
    ok(forward);
    assert_eq!(current(dir, &data).0, "2.0");
    pulls_as(&daemon, &addr, &want2);

    // The history, newest first, with who did what.
    let history = json(run(dir, &data, &["--json", "apps", "history", "shop"]));
    let seen: Vec<(String, String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["version"].as_str().unwrap().to_owned(),
                e["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actions: Vec<(&str, &str)> = seen
        .iter()
        .map(|(a, v, _)| (a.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("use", "2.0"),
            ("rollback", "1.0"),
            ("import", "2.0"),
            ("import", "1.0")
        ],
        "{history}"
    );
    assert_eq!(seen[0].2, "night-shift");
    assert_eq!(seen[1].2, "site-operator");
    assert!(
        seen[2].2.starts_with("bundle ") && seen[2].2.ends_with("(shop-2.0)"),
        "{history}"
    );
    assert!(seen[3].2.ends_with("(shop-1.0)"), "{history}");
    assert_eq!(history[1]["previous"], "2.0");
    let text = ok(run(dir, &data, &["apps", "history", "shop"]));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("2.0  made current (use) (was 1.0)  by night-shift"),
        "{text}"
    );

    // GC keeping one version drops v1 once the upload grace has passed for its blobs.
    let grace = Duration::from_secs(62);
    if let Some(left) = grace.checked_sub(v1_imported.elapsed()) {
        std::thread::sleep(left);
    }
    let plan = json(run(dir, &data, &["--json", "gc", "--dry-run"]));
    let dropped: Vec<&str> = plan["app_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(dropped, ["1.0"], "{plan}");
    let text = ok(run(dir, &data, &["gc", "--dry-run"]));
    assert!(
        text.contains("drop application version airlock/apps/shop:1.0"),
        "{text}"
    );
    assert_eq!(
        current(dir, &data).1,
        ["2.0", "1.0"],
        "a dry run drops nothing"
    );
    let chunks_before = chunks(dir, &data);
    let gc = json(run(dir, &data, &["--json", "gc"]));
    assert_eq!(gc["applied"]["app_versions"], 1, "{gc}");
    let chunks_after = chunks(dir, &data);
    eprintln!("gc keeping one version: chunks {chunks_before} -> {chunks_after}");
    assert!(
        chunks_after < chunks_before,
        "v1's own chunks went: {chunks_before} -> {chunks_after}"
    );
    assert_eq!(current(dir, &data), ("2.0".to_owned(), vec!["2.0".into()]));
    pulls_as(&daemon, &addr, &want2);
    // api:1.0 is a plain tag that still names v1's api image: it stays, and pulls.
    pulls_as(&daemon, &addr, &want1[1..2]);
    let history = json(run(dir, &data, &["--json", "apps", "history", "shop"]));
    assert_eq!(history[0]["action"], "drop", "{history}");
    assert_eq!(history[0]["version"], "1.0", "{history}");
    refused(
        run(dir, &data, &["apps", "rollback", "shop"]),
        "gc dropped it",
    );
    let verify = ok(run(dir, &data, &["verify"]));
    assert!(!verify.contains("problem"), "{verify}");

    drop(daemon);
    let _ = std::fs::remove_dir_all(&node);
    server.stop();
    let verify = ok(run(dir, &data, &["verify"]));
    assert!(!verify.contains("problem"), "{verify}");
}
