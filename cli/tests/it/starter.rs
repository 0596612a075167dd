//! Issue 17: a first volume that starts the site. Volume 1's disc carries the airlock program,
//! README.txt and SHA256SUMS; their room comes out of volume 1's budget; `--no-binary` leaves
//! them out; a cd-preset disc with them still fits a 700 MB CD as an ISO 9660 image (xorriso).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{
    bundle::{add_shop, ok, run, volumes},
    common::{find_tool, stderr, stdout},
};

/// Bytes of an 80-minute CD-R, the "700 MB" CD: 360,000 sectors of 2048 bytes.
const CD_MEDIA_BYTES: u64 = 360_000 * 2048;

fn export(cwd: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "export",
        "airlock/apps/shop:1.0",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(cwd, data, &args)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn issue_17_volume_1_carries_the_program_readme_and_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, vendor) = (tmp.path(), tmp.path().join("vendor"));
    add_shop(cwd, &vendor, 1);
    let out = cwd.join("disc");
    // The default program is the exporting airlock itself.
    let o = export(
        cwd,
        &vendor,
        &out,
        &["--volume-size", "400M", "--level", "1"],
    );
    let said = ok(o.clone());
    assert_eq!(
        files(&out),
        [
            "README.txt",
            "SHA256SUMS",
            "airlock",
            "shop-1.0.001.airlock",
            "shop-1.0.index.airlock"
        ]
    );
    assert!(
        said.contains("disc 1 holds airlock, README.txt, SHA256SUMS, shop-1.0.001.airlock"),
        "{said}"
    );
    let me = PathBuf::from(env!("CARGO_BIN_EXE_airlock"));
    let program = out.join("airlock");
    assert_eq!(
        std::fs::read(&program).unwrap(),
        std::fs::read(&me).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&program).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // This test build links the host's glibc, newer than 2.17: the export says so.
    let warned = stderr(&o);
    assert!(
        warned.contains("will not start on sites with glibc 2.17")
            && warned.contains("tools/release/portable.sh"),
        "{warned}"
    );

    // The site: check the disc with coreutils, run the program from it, follow README.txt.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    let checked = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{checked}");
    for f in ["airlock: OK", "README.txt: OK", "shop-1.0.001.airlock: OK"] {
        assert!(checked.contains(f), "{checked}");
    }
    let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
    for says in [
        "shop-1.0",
        "volume 1 of 1",
        "x86_64 Linux",
        "sha256sum -c SHA256SUMS",
        "import --allow-unsigned /media/cdrom/*",
        "NOT signed",
        "serve --listen",
        "airlock/apps/shop:1.0",
    ] {
        assert!(
            readme.contains(says),
            "README.txt lacks {says:?}:\n{readme}"
        );
    }
    let version = Command::new(&program).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(
        stdout(&version).starts_with("airlock "),
        "{}",
        stdout(&version)
    );

    // `import DISC/*` as README.txt says, by the program from the disc: the starter files are
    // named and ignored, the bundle lands.
    let site = cwd.join("site");
    let mut args = vec!["--data".to_owned(), site.to_str().unwrap().to_owned()];
    args.push("import".into());
    args.push("--allow-unsigned".into());
    args.extend(
        files(&out)
            .iter()
            .map(|f| out.join(f).to_str().unwrap().to_owned()),
    );
    let imported = Command::new(&program)
        .args(&args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let note = format!("{}{}", stdout(&imported), stderr(&imported));
    assert!(imported.status.success(), "{note}");
    for f in ["airlock", "README.txt", "SHA256SUMS"] {
        assert!(
            note.contains(&format!("ignoring {}", out.join(f).display())),
            "{note}"
        );
    }
    let listed = ok(run(cwd, &site, &["ls"]));
    assert!(listed.contains("airlock/apps/shop"), "{listed}");
    ok(run(cwd, &site, &["verify"]));
}

#[test]
fn issue_17_volume_1_gives_up_room_for_the_program() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, vendor) = (tmp.path(), tmp.path().join("vendor"));
    add_shop(cwd, &vendor, 1);
    // A small real program, so small volumes still have room beside it.
    let program = Path::new("/usr/bin/true");
    let size = 400_000u64;
    let plan = ok(run(
        cwd,
        &vendor,
        &[
            "--json",
            "export",
            "airlock/apps/shop:1.0",
            "--out",
            "with",
            "--binary",
            program.to_str().unwrap(),
            "--volume-size",
            "400K",
            "--dry-run",
        ],
    ));
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let reserved = plan["program"]["reserved"].as_u64().unwrap();
    let len = std::fs::metadata(program).unwrap().len();
    assert!(reserved >= len && reserved.is_multiple_of(2048), "{plan:#}");
    assert_eq!(plan["program"]["arch"], "x86_64", "{plan:#}");
    assert!(!cwd.join("with").exists(), "a dry run writes nothing");

    let with = cwd.join("with");
    ok(export(
        cwd,
        &vendor,
        &with,
        &[
            "--binary",
            program.to_str().unwrap(),
            "--volume-size",
            "400K",
            "--level",
            "1",
        ],
    ));
    let vols = volumes(&with);
    assert!(vols.len() >= 3, "{vols:?}");
    let lens: Vec<u64> = vols
        .iter()
        .map(|v| std::fs::metadata(v).unwrap().len())
        .collect();
    assert!(lens[0] + reserved <= size, "volume 1: {lens:?}");
    assert!(lens.iter().all(|&l| l <= size), "{lens:?}");
    // Some later volume uses room volume 1 gave up: the budget differs, not every volume.
    assert!(lens[1..].iter().any(|&l| l > size - reserved), "{lens:?}");
    assert_eq!(
        std::fs::read(with.join("airlock")).unwrap(),
        std::fs::read(program).unwrap()
    );

    // --no-binary: volume 1 has the whole volume again, and nothing is beside it.
    let without = cwd.join("without");
    ok(export(
        cwd,
        &vendor,
        &without,
        &["--no-binary", "--volume-size", "400K", "--level", "1"],
    ));
    let names = files(&without);
    assert!(names.iter().all(|n| n.ends_with(".airlock")), "{names:?}");
    let first = std::fs::metadata(&volumes(&without)[0]).unwrap().len();
    assert!(first > size - reserved, "volume 1 of {first} bytes");

    // Both import the same at a site.
    let site = cwd.join("site");
    let mut args = vec![
        "import".to_owned(),
        "--no-prompt".to_owned(),
        "--allow-unsigned".to_owned(),
    ];
    args.extend(vols.iter().rev().map(|v| v.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(run(cwd, &site, &args));
    ok(run(cwd, &site, &["verify"]));
}

#[test]
fn issue_17_a_bad_program_or_too_small_a_volume_is_refused_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, vendor) = (tmp.path(), tmp.path().join("vendor"));
    add_shop(cwd, &vendor, 1);
    let text = cwd.join("notes.txt");
    std::fs::write(&text, "not a program\n").unwrap();
    let out = cwd.join("out");
    let o = export(cwd, &vendor, &out, &["--binary", text.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("notes.txt") && stderr(&o).contains("not a 64-bit ELF"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists() || files(&out).is_empty(), "{:?}", files(&out));

    // The exporting airlock (hundreds of MB unstripped) does not fit beside a 1 MB volume.
    let o = export(cwd, &vendor, &out, &["--volume-size", "1M"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("no room on volume 1 for the airlock program") && e.contains("--no-binary"),
        "{e}"
    );
    assert!(!out.exists() || files(&out).is_empty(), "{:?}", files(&out));

    // An existing README.txt is not overwritten.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("README.txt"), "mine\n").unwrap();
    let o = export(cwd, &vendor, &out, &["--binary", "/usr/bin/true"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("README.txt"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("README.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(files(&out), ["README.txt"]);
}

#[test]
fn issue_17_a_full_cd_volume_and_its_starter_files_fit_700_mb_media_as_iso_9660() {
    let Some(xorriso) = find_tool("xorriso", "xorriso") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, vendor) = (tmp.path(), tmp.path().join("vendor"));
    add_shop(cwd, &vendor, 1);
    let out = cwd.join("disc");
    // The real starter files of a cd-preset export (this test's airlock as the program).
    let o = export(cwd, &vendor, &out, &["--volume-size", "cd", "--level", "1"]);
    ok(o);
    let plan = ok(run(
        cwd,
        &vendor,
        &[
            "--json",
            "export",
            "airlock/apps/shop:1.0",
            "--out",
            "plan",
            "--volume-size",
            "cd",
            "--dry-run",
        ],
    ));
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let (size, reserved) = (
        plan["volume_size"].as_u64().unwrap(),
        plan["program"]["reserved"].as_u64().unwrap(),
    );
    // Volume 1 grown to the most a cd export may write into it (sparse: its bytes do not
    // matter to the file system's size, only its length).
    let volume = &volumes(&out)[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(volume)
        .unwrap();
    file.set_len(size - reserved).unwrap();
    drop(file);
    std::fs::remove_file(out.join("shop-1.0.index.airlock")).unwrap();
    let iso = cwd.join("disc1.iso");
    let made = Command::new(&xorriso)
        .args([
            "-as",
            "mkisofs",
            "-R",
            "-J",
            "-iso-level",
            "3",
            "-V",
            "SHOP_1_0_1",
            "-o",
        ])
        .arg(&iso)
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let iso_len = std::fs::metadata(&iso).unwrap().len();
    assert!(
        iso_len <= CD_MEDIA_BYTES,
        "an ISO of {iso_len} bytes does not fit a CD of {CD_MEDIA_BYTES}"
    );
    // The image holds the four files.
    let listed = Command::new(&xorriso)
        .args(["-indev"])
        .arg(&iso)
        .args(["-ls", "/"])
        .output()
        .unwrap();
    let names = stdout(&listed);
    for f in [
        "airlock",
        "README.txt",
        "SHA256SUMS",
        "shop-1.0.001.airlock",
    ] {
        assert!(names.contains(f), "{names}");
    }
    let spare = CD_MEDIA_BYTES - iso_len;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("cd preset: ISO {iso_len} bytes, {spare} to spare on a 700 MB CD\n").as_bytes(),
    );
}

/// A signed bundle's disc: SHA256SUMS is signed too (Debian's minisign checks it with the
/// vendor's public key before the program is run), README.txt names the key and how to trust it.
#[test]
fn issue_17_a_signed_bundle_signs_the_checksums_of_its_first_disc() {
    let Some(minisign) = find_tool("minisign", "minisign") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, vendor) = (tmp.path(), tmp.path().join("vendor"));
    add_shop(cwd, &vendor, 1);
    ok(run(
        cwd,
        &vendor,
        &["key", "generate", "--out", "vendor", "--no-password"],
    ));
    let out = cwd.join("disc");
    ok(export(
        cwd,
        &vendor,
        &out,
        &[
            "--binary",
            "/usr/bin/true",
            "--sign",
            "vendor.key",
            "--level",
            "1",
        ],
    ));
    let names = files(&out);
    assert!(
        names.contains(&"SHA256SUMS.minisig".to_owned()),
        "{names:?}"
    );
    let check = Command::new(&minisign)
        .args(["-Vm", "SHA256SUMS", "-p"])
        .arg(cwd.join("vendor.pub"))
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    // A changed checksum line no longer verifies.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    std::fs::write(out.join("SHA256SUMS"), sums.replacen('0', "1", 1)).unwrap();
    let check = Command::new(&minisign)
        .args(["-Vm", "SHA256SUMS", "-p"])
        .arg(cwd.join("vendor.pub"))
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
    let public = std::fs::read_to_string(cwd.join("vendor.pub")).unwrap();
    assert!(readme.contains("signed with minisign key"), "{readme}");
    assert!(
        readme.contains("[trust]") && !readme.contains("--allow-unsigned"),
        "{readme}"
    );
    // The key id README.txt names is the public key's (minisign prints it in its comment line).
    let id = readme
        .split("signed with minisign key ")
        .nth(1)
        .and_then(|r| r.split('.').next())
        .unwrap();
    assert!(public.contains(id), "{id} not in {public}");
}
