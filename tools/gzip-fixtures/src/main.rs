//! Writes gzip fixtures of one seeded, rootfs-like tar with the flate2 backend this build was
//! made with (the `zlib-ng` or `zlib-rs` feature): `gzip-fixtures OUT_DIR`.
//!
//! The tar is a pure function of the code below (its own PRNG, fixed mtimes, owners and
//! modes), so the tests can check the decompressed bytes' hash as well as the gzip bytes'.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use flate2::{Compression, GzBuilder};

#[cfg(all(feature = "zlib-ng", feature = "zlib-rs"))]
compile_error!(
    "choose one backend: `--features zlib-ng`, or `--no-default-features --features zlib-rs`"
);
#[cfg(not(any(feature = "zlib-ng", feature = "zlib-rs")))]
compile_error!("choose a backend: `--features zlib-ng` or `--features zlib-rs`");

/// The backend flate2 was built with, as the fixtures' file names say it.
const BACKEND: &str = if cfg!(feature = "zlib-ng") {
    "zlib-ng"
} else {
    "zlib-rs"
};
/// Every entry's mtime (plus its index), so that the tar never depends on the clock.
const MTIME_BASE: u64 = 1_700_000_000;
const SEED: u64 = 0x6169_726c_6f63_6b00; // "airlock\0"

fn main() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        return Err("usage: gzip-fixtures OUT_DIR".into());
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let tar = rootfs_tar().map_err(|e| format!("building the tar: {e}"))?;
    for level in [1, 6, 9] {
        let gz = gzip(&tar, level);
        write(&out.join(format!("{BACKEND}-l{level}.tar.gz")), &gz)?;
    }
    // Two members, split inside a file's data so that neither half is a whole tar.
    let cut = tar.len() / 3 / 512 * 512 + 100;
    let mut multi = gzip(&tar[..cut], 6);
    multi.extend(gzip(&tar[cut..], 6));
    write(&out.join(format!("{BACKEND}-multi.tar.gz")), &multi)?;
    eprintln!("tar: {} bytes", tar.len());
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("{}: {} bytes", path.display(), bytes.len());
    Ok(())
}

/// One gzip member with flate2's default header: no name, mtime 0, OS 255.
fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzBuilder::new().write(Vec::new(), Compression::new(level));
    // Writes of uneven sizes, as a streaming producer makes them; the output must not depend on them.
    for piece in data.chunks(40_000) {
        e.write_all(piece).expect("writing to a Vec");
    }
    e.finish().expect("writing to a Vec")
}

/// splitmix64: small, seeded, and fixed forever (a crate's generator may change its stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "package",
    "library",
    "config",
    "path",
    "user",
    "system",
    "daemon",
    "service",
    "file",
    "directory",
    "default",
    "enable",
    "value",
    "option",
    "network",
    "socket",
    "timeout",
    "cache",
    "version",
    "license",
    "copyright",
    "software",
    "warranty",
    "module",
    "runtime",
    "shared",
];

/// Prose-like text: seeded words in lines of varied length.
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 16);
    let mut line = 0;
    while v.len() < len {
        v.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        line += 1;
        if line >= 6 + rng.below(8) {
            v.push(b'\n');
            line = 0;
        } else {
            v.push(b' ');
        }
    }
    v.truncate(len);
    v
}

/// A config file: `key = value` lines and comments.
fn config(rng: &mut Rng, lines: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..lines {
        let key = WORDS[rng.below(WORDS.len())];
        let sub = WORDS[rng.below(WORDS.len())];
        match rng.below(5) {
            0 => writeln!(v, "# {key} {sub} {}", WORDS[rng.below(WORDS.len())]),
            1 => writeln!(v, "{key}_{sub} = {}", rng.below(65536)),
            _ => writeln!(v, "{key}.{sub} = /usr/lib/{sub}/{key}"),
        }
        .expect("writing to a Vec");
    }
    v
}

/// Binary-like bytes: an ELF-ish header, then sections of code-like bytes (a small alphabet of
/// opcodes with random operands), zero padding, a string table and random data.
fn binary(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    const OPCODES: &[u8] = &[
        0x48, 0x89, 0x8b, 0xe8, 0xc3, 0x0f, 0x85, 0x84, 0x31, 0xc0, 0xff,
    ];
    while v.len() < len {
        match rng.below(16) {
            0..=8 => {
                for _ in 0..64 + rng.below(512) {
                    v.push(OPCODES[rng.below(OPCODES.len())]);
                    if rng.below(3) == 0 {
                        // Operands: small offsets into a few sections.
                        let operand = 0x40_0000 + 8 * rng.below(2048) as u32;
                        v.extend_from_slice(&operand.to_le_bytes());
                    }
                }
            }
            9 | 10 => v.resize(v.len() + 16 + rng.below(256), 0),
            11..=14 => {
                for _ in 0..8 + rng.below(32) {
                    v.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                    v.push(0);
                }
            }
            _ => {
                for _ in 0..16 + rng.below(64) {
                    v.push(rng.next() as u8);
                }
            }
        }
    }
    v.truncate(len);
    v
}

/// Appends entries with fixed owners and mtimes.
struct TarWriter {
    b: tar::Builder<Vec<u8>>,
    entries: u64,
}

impl TarWriter {
    fn header(&mut self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME_BASE + self.entries);
        h.set_uid(0);
        h.set_gid(0);
        // Names that fit a ustar header always do: a failure here is a bug in this generator.
        h.set_username("root").expect("short user name");
        h.set_groupname("root").expect("short group name");
        self.entries += 1;
        h
    }

    fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.b.append_data(&mut h, path, std::io::empty())
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data)
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> std::io::Result<()> {
        let mut h = self.header(kind, 0o777, 0);
        self.b.append_link(&mut h, path, target)
    }

    /// A file whose name is too long for ustar, carried in a PAX extended header (`path`).
    fn pax_file(&mut self, path: &str, data: &[u8]) -> std::io::Result<()> {
        let record = pax_record("path", path);
        let mut x = self.header(tar::EntryType::XHeader, 0o644, record.len() as u64);
        x.set_path("PaxHeaders/long-name")?;
        x.set_cksum();
        self.b.append(&x, record.as_slice())?;
        let mut h = self.header(tar::EntryType::Regular, 0o644, data.len() as u64);
        // The ustar name is what readers without PAX see: the last 99 bytes, as GNU tar keeps.
        h.set_path(&path[path.len() - 99..])?;
        h.set_cksum();
        self.b.append(&h, data)
    }
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// The fixture tar (about 300 KiB): directories, config and doc text, binaries, one licence
/// file copied into every doc directory, a symlink, a hard link and a PAX long name.
fn rootfs_tar() -> std::io::Result<Vec<u8>> {
    let mut rng = Rng(SEED);
    let mut t = TarWriter {
        b: tar::Builder::new(Vec::new()),
        entries: 0,
    };
    for d in [
        "etc/",
        "etc/app.d/",
        "usr/",
        "usr/bin/",
        "usr/lib/",
        "usr/share/",
        "usr/share/doc/",
    ] {
        t.dir(d)?;
    }
    for (i, word) in WORDS.iter().take(12).enumerate() {
        let lines = 10 + rng.below(80);
        t.file(
            &format!("etc/app.d/{i:02}-{word}.conf"),
            0o644,
            &config(&mut rng, lines),
        )?;
    }
    let tools = ["airctl", "packd", "chunkls", "layerfmt"];
    for name in tools {
        let len = 12_000 + rng.below(20_000);
        t.file(&format!("usr/bin/{name}"), 0o755, &binary(&mut rng, len))?;
    }
    t.file(
        "usr/lib/libairlock.so.1.4.2",
        0o755,
        &binary(&mut rng, 60_000),
    )?;
    t.link(
        tar::EntryType::Symlink,
        "usr/lib/libairlock.so.1",
        "libairlock.so.1.4.2",
    )?;
    // The same tool under a second name, as busybox-style images ship it.
    t.link(
        tar::EntryType::Link,
        "usr/bin/airctl-compat",
        "usr/bin/airctl",
    )?;
    let licence = text(&mut rng, 9_000);
    for (i, pkg) in ["libairlock1", "packd", "chunkls", "layerfmt", "airctl"]
        .iter()
        .enumerate()
    {
        let dir = format!("usr/share/doc/{pkg}/");
        t.dir(&dir)?;
        t.file(&format!("{dir}copyright"), 0o644, &licence)?;
        let len = 2_000 + rng.below(12_000);
        t.file(&format!("{dir}README"), 0o644, &text(&mut rng, len))?;
        if i == 0 {
            let len = 10_000 + rng.below(10_000);
            t.file(&format!("{dir}changelog"), 0o644, &text(&mut rng, len))?;
        }
    }
    let long = "usr/share/doc/libairlock1/examples/registry-mirror-configuration/\
                containerd-hosts-toml-with-every-option-spelled-out/hosts.toml.example";
    let example = config(&mut rng, 40);
    t.pax_file(long, &example)?;
    t.file("etc/hostname", 0o644, b"airlock\n")?;
    t.b.into_inner()
}
