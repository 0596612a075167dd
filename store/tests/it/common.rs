//! Fixtures shared by the tests: seeded content, tar streams, stores with small packs, and
//! helpers that look at pack files through their documented byte layout.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use airlock_store::{
    ChunkerParams, Digest, PackId, PutOptions, PutOutcome, Store, StoreOptions, unwrap_io,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded random generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `len` pseudo-random (incompressible) bytes from `seed`.
pub fn seeded(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng(seed).fill_bytes(&mut v);
    v
}

/// `len` compressible bytes: words from a small vocabulary, in seeded order.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &["air ", "gap ", "layer ", "blob ", "chunk ", "pack ", "\n"];
    let mut r = rng(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(WORDS[r.gen_range(0..WORDS.len())].as_bytes());
    }
    v.truncate(len);
    v
}

/// One file of a tar fixture.
#[derive(Clone, Debug)]
pub struct TarFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mtime: u64,
}

/// `n` files of seeded content (sizes from 0 to `max_len`), as a tar's members.
pub fn tar_files(seed: u64, n: usize, max_len: usize) -> Vec<TarFile> {
    let mut r = rng(seed);
    (0..n)
        .map(|i| {
            let len = r.gen_range(0..=max_len);
            TarFile {
                path: format!("usr/lib/pkg{}/file-{i}.bin", i % 7),
                data: seeded(seed.wrapping_mul(1000).wrapping_add(i as u64), len),
                mtime: 1_700_000_000,
            }
        })
        .collect()
}

/// A tar stream of `files`, built with the `tar` crate (GNU headers).
pub fn tar_of(files: &[TarFile]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(f.mtime);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &f.path, f.data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Small chunks (256 B average), so that little data makes many chunks and recipe segments.
pub fn tiny_chunks() -> ChunkerParams {
    ChunkerParams::new(64, 256, 1024).unwrap()
}

/// Small chunks (4 KiB average), for tests that want many frames out of little data.
pub fn small_chunks() -> ChunkerParams {
    ChunkerParams::new(1024, 4096, 16384).unwrap()
}

/// Options with small chunks, small frames and packs sealed at `pack_size` bytes.
pub fn small_opts(pack_size: u64) -> StoreOptions {
    StoreOptions {
        chunker: small_chunks(),
        pack_size,
        frame_size: 16 * 1024,
        ..StoreOptions::default()
    }
}

/// A fresh store in a temporary directory.
pub fn store_with(opts: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts).unwrap();
    (dir, store)
}

/// Puts `data` under its sha256 digest.
pub fn put(store: &Store, data: &[u8]) -> (Digest, PutOutcome) {
    let d = Digest::sha256(data);
    let out = store.put_blob(&d, data, PutOptions::default()).unwrap();
    (d, out)
}

/// Reads a whole blob through the streaming reader, in odd-sized reads.
pub fn read_all(store: &Store, digest: &Digest) -> airlock_store::Result<Vec<u8>> {
    let mut r = store.open_blob(digest)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 7919];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(unwrap_io(digest, e)),
        }
    }
}

/// Asserts a blob reads back exactly as `data`.
pub fn assert_reads(store: &Store, digest: &Digest, data: &[u8]) {
    let got = read_all(store, digest).unwrap_or_else(|e| panic!("reading {digest}: {e}"));
    assert!(got == data, "blob {digest} reads back different bytes");
}

/// Path of a pack file (layout documented in the store: `packs/<last byte hex>/<id>.pack`).
pub fn pack_path(root: &Path, id: PackId) -> PathBuf {
    root.join("packs")
        .join(format!("{:02x}", id.0 & 0xff))
        .join(format!("{id}.pack"))
}

/// Every pack file with its id and length, by id.
pub fn pack_files(root: &Path) -> Vec<(PackId, u64)> {
    let mut out = Vec::new();
    let Ok(dirs) = fs::read_dir(root.join("packs")) else {
        return out;
    };
    for sub in dirs {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let id = u64::from_str_radix(name.strip_suffix(".pack").unwrap(), 16).unwrap();
            out.push((PackId(id), fs::metadata(&path).unwrap().len()));
        }
    }
    out.sort();
    out
}

/// A frame as found by walking a pack file through its documented layout.
#[derive(Clone, Debug)]
pub struct RawFrame {
    pub offset: u64,
    pub len: u64,
    /// Chunk ids and lengths, in order.
    pub entries: Vec<([u8; 32], u32)>,
    pub raw_len: u32,
    /// Offset of the compressed payload in the pack.
    pub payload: u64,
}

/// Frames of a pack file, and whether it ends with a seal.
pub fn raw_frames(path: &Path) -> (Vec<RawFrame>, bool) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"AIRLKPCK",
        "pack header of {}",
        path.display()
    );
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let mut at = 16usize;
    let mut frames = Vec::new();
    while at < bytes.len() {
        if &bytes[at..at + 4] == b"SEAL" {
            assert_eq!(at + 32, bytes.len(), "seal ends the pack");
            return (frames, true);
        }
        assert_eq!(&bytes[at..at + 4], b"FRAM", "frame at {at}");
        let (n, raw_len, comp_len) = (u32_at(at + 4), u32_at(at + 8), u32_at(at + 12));
        let mut entries = Vec::new();
        for k in 0..n as usize {
            let e = at + 32 + k * 36;
            entries.push((bytes[e..e + 32].try_into().unwrap(), u32_at(e + 32)));
        }
        let payload = at + 32 + n as usize * 36;
        let len = payload + comp_len as usize - at;
        frames.push(RawFrame {
            offset: at as u64,
            len: len as u64,
            entries,
            raw_len,
            payload: payload as u64,
        });
        at += len;
    }
    (frames, false)
}

/// Flips one bit of the byte at `offset` of a file.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    fs::write(path, bytes).unwrap();
}
