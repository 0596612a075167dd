//! Issue 17: signed bundles through the `airlock` binary: keys from `airlock key generate` and
//! from Debian's `minisign -G`, `export --sign`, the `.minisig` file checked by the `minisign`
//! CLI, `[trust]` in airlock.toml; tampered, swapped, foreign, untrusted and unsigned bundles
//! refused with exit 2 and the store unchanged.

use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use airlock_bundle::{BundleIndex, VOLUME_HEADER_LEN, VOLUME_TRAILER_LEN};
use airlock_conformance::{ImageBuilder, write_oci_layout};

use crate::{
    bundle::{ok, run, volumes},
    common::{find_tool, stderr, stdout},
};

/// Runs `airlock --data DATA ARGS` with `input` on its standard input.
fn run_stdin(cwd: &Path, data: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("--data")
        .arg(data)
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_DATA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A vendor store holding two small images, `example.com/app:1.0` and `example.com/app:2.0`.
fn vendor(dir: &Path) -> PathBuf {
    let data = dir.join("vendor");
    let layout = dir.join("layout");
    let v1 = ImageBuilder::new().layers(2).layer_bytes(150_000).build();
    let v2 = ImageBuilder::new().layers(2).layer_bytes(150_000).build();
    write_oci_layout(&layout, &[("1.0", &v1), ("2.0", &v2)]).unwrap();
    let src = format!("oci:{}", layout.display());
    ok(run(dir, &data, &["add", &src, "--as", "example.com/app"]));
    data
}

/// Exports `reference` into `out` as bundle `name` in volumes of 200 kB, with `extra` flags.
fn export(dir: &Path, data: &Path, reference: &str, name: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "export",
        "--no-binary",
        reference,
        "--out",
        out.to_str().unwrap(),
        "--name",
        name,
        "--volume-size",
        "200K",
        "--level",
        "3",
    ];
    args.extend_from_slice(extra);
    ok(run(dir, data, &args));
}

/// A config file trusting `keys` (files or inline keys).
fn trust_config(path: &Path, keys: &[&str]) -> PathBuf {
    let list: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    std::fs::write(path, format!("[trust]\nkeys = [{}]\n", list.join(", "))).unwrap();
    path.to_owned()
}

/// What a store shows: `ls`, `du` (blobs, chunks, packs, their bytes) as JSON, and whether an
/// import left state. The index database's file size is left out: opening a store for writing
/// may grow it by a page whatever the command does.
fn snapshot(dir: &Path, data: &Path) -> (String, serde_json::Value, bool) {
    let ls = ok(run(dir, data, &["--json", "ls"]));
    let mut du: serde_json::Value =
        serde_json::from_str(&ok(run(dir, data, &["--json", "du"]))).unwrap();
    let du_fields = du.as_object_mut().unwrap();
    du_fields.remove("index_bytes");
    du_fields.remove("stored_bytes");
    assert!(
        du["chunks"].as_u64().is_some() && du["pack_bytes"].as_u64().is_some(),
        "{du}"
    );
    (ls, du, data.join("imports").exists())
}

/// Imports `paths` into `site` with `config`; asserts exit 2 with every word of `wanted` in
/// the error and the store as it was.
fn refused(
    dir: &Path,
    site: &Path,
    config: &Path,
    extra: &[&str],
    paths: &[&Path],
    wanted: &[&str],
) {
    let before = snapshot(dir, site);
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "import",
        "--no-prompt",
    ];
    args.extend_from_slice(extra);
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let o = run(dir, site, &args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}\nstdout:\n{}\nstderr:\n{err}",
        stdout(&o)
    );
    for w in wanted {
        assert!(err.contains(w), "{w:?} not in:\n{err}");
    }
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(snapshot(dir, site), before, "the store changed: {args:?}");
}

/// A volume's parts, by the layout of bundle/FORMAT.md (format 2).
struct Parts {
    header: Vec<u8>,
    frames: Vec<u8>,
    index: Vec<u8>,
    signature: Vec<u8>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn parts(path: &Path) -> Parts {
    let b = std::fs::read(path).unwrap();
    let t = &b[b.len() - VOLUME_TRAILER_LEN as usize..];
    let (offset, index_len, sig_len) = (u64_at(t, 8), u64_at(t, 16), u64_at(t, 56));
    let (offset, index_len, sig_len) = (offset as usize, index_len as usize, sig_len as usize);
    Parts {
        header: b[..VOLUME_HEADER_LEN as usize].to_vec(),
        frames: b[VOLUME_HEADER_LEN as usize..offset].to_vec(),
        index: b[offset..offset + index_len].to_vec(),
        signature: b[offset + index_len..offset + index_len + sig_len].to_vec(),
    }
}

fn check16(b: &[u8]) -> [u8; 16] {
    blake3::hash(b).as_bytes()[..16].try_into().unwrap()
}

/// Writes a volume from its parts as an attacker would: every check of the volume recomputed
/// (the header's and trailer's index check, the signature check, both structure checks).
fn forge(path: &Path, p: &Parts) {
    let index_check = *blake3::hash(&p.index).as_bytes();
    let mut header = p.header.clone();
    header[40..72].copy_from_slice(&index_check);
    let c = check16(&header[..72]);
    header[72..88].copy_from_slice(&c);
    let mut trailer = b"AIRLKEND".to_vec();
    trailer.extend((VOLUME_HEADER_LEN + p.frames.len() as u64).to_le_bytes());
    trailer.extend((p.index.len() as u64).to_le_bytes());
    trailer.extend(index_check);
    trailer.extend((p.signature.len() as u64).to_le_bytes());
    trailer.extend(check16(&p.signature));
    let c = check16(&trailer);
    trailer.extend(c);
    let mut out = header;
    out.extend(&p.frames);
    out.extend(&p.index);
    out.extend(&p.signature);
    out.extend(trailer);
    std::fs::write(path, out).unwrap();
}

/// Copies `files` into a new directory `to`; returns the copies.
fn copy_all(files: &[PathBuf], to: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(to).unwrap();
    files
        .iter()
        .map(|f| {
            let dest = to.join(f.file_name().unwrap());
            std::fs::copy(f, &dest).unwrap();
            dest
        })
        .collect()
}

#[test]
fn issue_17_a_signed_bundle_imports_is_named_by_the_dry_run_and_verifies_with_minisign() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = vendor(dir);

    // A key pair with a password read from standard input; the secret key is owner-only.
    let o = run_stdin(
        dir,
        &data,
        &["key", "generate", "--out", "vendor", "--password-stdin"],
        "s3cret\n",
    );
    let out = ok(o);
    let key_id = out
        .strip_prefix("key ")
        .and_then(|s| s.get(..16))
        .unwrap()
        .to_owned();
    assert!(
        out.contains("vendor.pub") && out.contains("encrypted with your password"),
        "{out}"
    );
    let mode = std::fs::metadata(dir.join("vendor.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let o = run(
        dir,
        &data,
        &["key", "generate", "--out", "vendor", "--no-password"],
    );
    assert_eq!(o.status.code(), Some(2), "never overwrites a key");
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // Without a terminal and without a password option, nothing is written.
    let o = run(dir, &data, &["key", "generate", "--out", "other"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));
    assert!(!dir.join("other.key").exists());

    // A wrong password is refused before anything is written.
    let out_dir = dir.join("out");
    let o = run_stdin(
        dir,
        &data,
        &[
            "export",
            "--no-binary",
            "example.com/app:1.0",
            "--out",
            out_dir.to_str().unwrap(),
            "--name",
            "app-1.0",
            "--sign",
            "vendor.key",
            "--password-stdin",
        ],
        "wrong\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password"), "{}", stderr(&o));
    assert!(!out_dir.exists());
    let o = run_stdin(
        dir,
        &data,
        &[
            "export",
            "--no-binary",
            "example.com/app:1.0",
            "--out",
            out_dir.to_str().unwrap(),
            "--name",
            "app-1.0",
            "--volume-size",
            "200K",
            "--level",
            "3",
            "--sign",
            "vendor.key",
            "--password-stdin",
        ],
        "s3cret\n",
    );
    let out = ok(o);
    assert!(out.contains(&format!("signed by key {key_id}")), "{out}");
    let index = out_dir.join("app-1.0.index.airlock");
    let sig = out_dir.join("app-1.0.index.airlock.minisig");
    assert!(sig.is_file(), "{out}");
    let vols = volumes(&out_dir);
    assert!(vols.len() >= 2, "{vols:?}");
    let sig_text = std::fs::read(&sig).unwrap();
    for v in &vols {
        assert_eq!(
            parts(v).signature,
            sig_text,
            "every volume carries the signature"
        );
        assert_eq!(parts(v).index, std::fs::read(&index).unwrap());
    }

    // Debian's minisign verifies the signature file over the index file.
    if let Some(minisign) = find_tool("minisign", "minisign") {
        let o = Command::new(&minisign)
            .args(["-Vm", index.to_str().unwrap(), "-p", "vendor.pub"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        let said = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            said.contains("app-1.0"),
            "the trusted comment names the bundle: {said}"
        );
        // ... and refuses it over other bytes.
        let other = dir.join("other.index.airlock");
        let mut bytes = std::fs::read(&index).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&other, bytes).unwrap();
        let o = Command::new(&minisign)
            .args([
                "-Vm",
                other.to_str().unwrap(),
                "-x",
                sig.to_str().unwrap(),
                "-p",
                "vendor.pub",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(!o.status.success(), "minisign accepted altered bytes");
    }

    // A site trusting the key by file: the dry run names the signer, the import goes through.
    let site = dir.join("site");
    let config = trust_config(&dir.join("site.toml"), &["vendor.pub"]);
    let paths: Vec<&str> = vols.iter().map(|v| v.to_str().unwrap()).collect();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--json",
        "import",
        "--no-prompt",
    ];
    args.extend(&paths);
    let out = ok(run(dir, &site, &args));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["complete"], true, "{out}");
    assert_eq!(v["bundles"][0]["signer"]["status"], "trusted", "{out}");
    assert_eq!(
        v["bundles"][0]["signer"]["key_id"],
        key_id.as_str(),
        "{out}"
    );
    ok(run(dir, &site, &["verify"]));
    let mut args = vec!["--config", config.to_str().unwrap(), "import", "--dry-run"];
    args.extend(&paths);
    let out = ok(run(dir, &site, &args));
    assert!(
        out.contains(&format!("signed by key {key_id} (trusted: ")),
        "{out}"
    );
    assert!(
        out.contains("trusted comment: timestamp:") && out.contains("app-1.0"),
        "{out}"
    );

    // The same key given inline in airlock.toml (the RW... line of the .pub file) is trusted too.
    let line = std::fs::read_to_string(dir.join("vendor.pub")).unwrap();
    let inline = line.lines().nth(1).unwrap().to_owned();
    let config = trust_config(&dir.join("inline.toml"), &[&inline]);
    let mut args = vec!["--config", config.to_str().unwrap(), "import", "--dry-run"];
    args.extend(&paths);
    let out = ok(run(dir, &site, &args));
    assert!(
        out.contains(&format!("signed by key {key_id} (trusted: inline key at")),
        "{out}"
    );
}

#[test]
fn issue_17_a_key_made_by_the_minisign_cli_signs_an_export_that_imports() {
    let Some(minisign) = find_tool("minisign", "minisign") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = vendor(dir);
    let o = Command::new(minisign)
        .args(["-G", "-W", "-p", "mini.pub", "-s", "mini.key"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("out");
    export(
        dir,
        &data,
        "example.com/app:2.0",
        "app-2.0",
        &out,
        &["--sign", "mini.key"],
    );
    let config = trust_config(&dir.join("site.toml"), &["mini.pub"]);
    let site = dir.join("site");
    let out = ok(run(
        dir,
        &site,
        &[
            "--config",
            config.to_str().unwrap(),
            "import",
            "--no-prompt",
            out.to_str().unwrap(),
        ],
    ));
    assert!(
        out.contains("imported bundle app-2.0") && out.contains("(trusted: "),
        "{out}"
    );
}

#[test]
fn issue_17_altered_swapped_foreign_untrusted_and_unsigned_bundles_are_refused_with_nothing_written()
 {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = vendor(dir);
    for k in ["trusted", "stranger"] {
        ok(run(
            dir,
            &data,
            &["key", "generate", "--out", k, "--no-password"],
        ));
    }
    let good = dir.join("good");
    export(
        dir,
        &data,
        "example.com/app:1.0",
        "app-1.0",
        &good,
        &["--sign", "trusted.key"],
    );
    let other = dir.join("other");
    export(
        dir,
        &data,
        "example.com/app:2.0",
        "app-2.0",
        &other,
        &["--sign", "trusted.key"],
    );
    let strange = dir.join("strange");
    export(
        dir,
        &data,
        "example.com/app:2.0",
        "app-2.0",
        &strange,
        &["--sign", "stranger.key"],
    );
    let unsigned = dir.join("unsigned");
    export(dir, &data, "example.com/app:2.0", "app-2.0", &unsigned, &[]);
    let good_vols = volumes(&good);
    assert!(good_vols.len() >= 2, "{good_vols:?}");
    let stranger_id = std::fs::read_to_string(dir.join("stranger.pub")).unwrap();
    let stranger_id = stranger_id
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();

    // The site already holds something, so that "unchanged" means something.
    let site = dir.join("site");
    let config = trust_config(&dir.join("site.toml"), &["trusted.pub"]);
    ok(run(
        dir,
        &site,
        &[
            "--config",
            config.to_str().unwrap(),
            "import",
            "--no-prompt",
            other.to_str().unwrap(),
        ],
    ));
    let as_paths = |v: &[PathBuf]| -> Vec<PathBuf> { v.to_vec() };

    // 1. A flipped byte in a tag name of volume 1's index copy, every volume check recomputed:
    // only the signature finds it, and --allow-unsigned does not let it through.
    let flipped = copy_all(&as_paths(&good_vols), &dir.join("flipped"));
    let mut p = parts(&flipped[0]);
    let mut ix = BundleIndex::decode(&p.index).unwrap();
    let tag = ix.refs[0].tag.as_mut().unwrap();
    assert_eq!(tag, "1.0");
    *tag = "1.1".into();
    p.index = ix.encode().unwrap();
    forge(&flipped[0], &p);
    // The volume's own checks pass: a dry run without the signature sees nothing wrong.
    let o = run(
        dir,
        &dir.join("scratch"),
        &[
            "import",
            "--dry-run",
            "--allow-unsigned",
            flipped[0].to_str().unwrap(),
        ],
    );
    assert!(!stdout(&o).contains("damaged"), "{}", stdout(&o));
    let all: Vec<&Path> = flipped.iter().map(PathBuf::as_path).collect();
    for extra in [&[][..], &["--allow-unsigned"][..]] {
        refused(
            dir,
            &site,
            &config,
            extra,
            &all,
            &[
                "bundle app-1.0",
                "app-1.0.001.airlock",
                "does not verify",
                "trusted key",
                "refused even with --allow-unsigned",
            ],
        );
    }
    // Volume 1 intact and volume 2 altered: volume 1's index is verified, volume 2 names another.
    let second = copy_all(&as_paths(&good_vols), &dir.join("second"));
    let mut p = parts(&second[1]);
    let mut ix = BundleIndex::decode(&p.index).unwrap();
    ix.refs[0].tag = Some("1.1".into());
    p.index = ix.encode().unwrap();
    forge(&second[1], &p);
    let all: Vec<&Path> = second.iter().map(PathBuf::as_path).collect();
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &["app-1.0.002.airlock (volume 2)", "another bundle index"],
    );

    // 2. A swapped index: another signed bundle's index in volume 1, the signature left.
    let swapped = copy_all(&as_paths(&good_vols), &dir.join("swapped"));
    let mut p = parts(&swapped[0]);
    let foreign = parts(&volumes(&other)[0]);
    p.index = foreign.index.clone();
    p.header[24..40].copy_from_slice(&foreign.header[24..40]);
    p.header[16..20].copy_from_slice(&foreign.header[16..20]);
    p.header[12..16].copy_from_slice(&1u32.to_le_bytes());
    forge(&swapped[0], &p);
    let all: Vec<&Path> = swapped.iter().map(PathBuf::as_path).collect();
    refused(
        dir,
        &site,
        &config,
        &["--allow-unsigned"],
        &all,
        &["does not verify", "app-1.0.001.airlock"],
    );
    // ... and with its signature too, the volume still claiming to be this bundle's volume 1.
    let mut p = parts(&good_vols[0]);
    p.index = foreign.index.clone();
    p.signature = foreign.signature.clone();
    forge(&swapped[0], &p);
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &["app-1.0.001.airlock (volume 1)", "does not verify"],
    );

    // 3. A volume of another bundle, signed by a key the site does not trust, given alongside
    // under this bundle's volume name: nothing of either bundle is imported.
    let mixed = copy_all(&as_paths(&good_vols), &dir.join("mixed"));
    let n = mixed.len();
    let intruder = dir
        .join("mixed")
        .join(format!("app-1.0.{:03}.airlock", n + 1));
    std::fs::copy(&volumes(&strange)[0], &intruder).unwrap();
    let mut all: Vec<&Path> = mixed.iter().map(PathBuf::as_path).collect();
    all.push(&intruder);
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &["bundle app-2.0", &stranger_id, "does not trust"],
    );

    // 4. Signed by a key the site does not trust: refused, unless --allow-unsigned, which
    // imports it unverified and says so.
    let strange_vols = volumes(&strange);
    let all: Vec<&Path> = strange_vols.iter().map(PathBuf::as_path).collect();
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &[
            &stranger_id,
            "airlock.toml [trust] lists key(s)",
            "--allow-unsigned",
        ],
    );

    // 5. Unsigned: refused, naming the volume and what to do.
    let unsigned_vols = volumes(&unsigned);
    let all: Vec<&Path> = unsigned_vols.iter().map(PathBuf::as_path).collect();
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &[
            "app-2.0.001.airlock is not signed",
            "--sign KEY",
            "--allow-unsigned",
        ],
    );
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "import",
        "--dry-run",
        "--allow-unsigned",
    ];
    args.extend(all.iter().map(|p| p.to_str().unwrap()));
    let out = ok(run(dir, &site, &args));
    assert!(out.contains("unsigned: NOT verified"), "{out}");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "import",
        "--no-prompt",
        "--allow-unsigned",
    ];
    let strange_paths: Vec<&str> = strange_vols.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend(&strange_paths);
    let out = ok(run(dir, &site, &args));
    assert!(
        out.contains(&format!(
            "signed by key {stranger_id}, which [trust] does not list: NOT verified"
        )),
        "{out}"
    );

    // 6. Signature sections damaged on the way (their checks not recomputed) are damage, not
    // tampering: with every volume's copy damaged, the bundle's .minisig file given beside them
    // is used; without it, the import is refused as unsigned.
    let rotten = copy_all(&as_paths(&good_vols), &dir.join("rotten"));
    for v in &rotten {
        let p = parts(v);
        let mut bytes = std::fs::read(v).unwrap();
        let at = VOLUME_HEADER_LEN as usize + p.frames.len() + p.index.len() + 30;
        bytes[at] ^= 0x20;
        std::fs::write(v, bytes).unwrap();
    }
    let all: Vec<&Path> = rotten.iter().map(PathBuf::as_path).collect();
    refused(
        dir,
        &site,
        &config,
        &[],
        &all,
        &[
            "no signature given is readable",
            "app-1.0.index.airlock.minisig",
        ],
    );
    let sig_file = good.join("app-1.0.index.airlock.minisig");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "import",
        "--no-prompt",
    ];
    args.extend(rotten.iter().map(|p| p.to_str().unwrap()));
    args.push(sig_file.to_str().unwrap());
    let out = ok(run(dir, &site, &args));
    assert!(
        out.contains("imported bundle app-1.0") && out.contains("(trusted: "),
        "{out}"
    );
    assert!(
        out.contains("its copy of the bundle's signature is unusable"),
        "{out}"
    );
    ok(run(dir, &site, &["verify"]));
}
