//! Issue 16: bundles are input too. Volumes are rewritten here as an attacker would (every
//! check and checksum recomputed, the content hostile): a recipe segment whose zstd frame
//! claims a terabyte, a script segment that is a zstd bomb, lengths and counts of u32::MAX or
//! u64::MAX in a blob description, in the bundle index and in its frame table, a frame whose
//! payload expands past its header, an index copy claiming 2 GiB. Each is refused naming the
//! file, the volume and the offset, and the site's store is left as it was.

use std::{
    fs,
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use airlock_bundle::{
    BundleIndex, Error, INDEX_HEADER_LEN, ImportOptions, Inventory, NoProgress, VOLUME_HEADER_LEN,
    VOLUME_TRAILER_LEN, VolumeReader, VolumeWriter, import, parse_volume_file_name,
};
use airlock_store::{Digest, MAX_SEGMENT_RAW_BYTES, RepoChange, Store, Verify};

use crate::common::{bytes, export, image, link_manifest, open, opts, put};

/// The index and every volume's frames of a bundle, read back to be rewritten.
struct Bundle {
    /// The volume files, by number from 1.
    paths: Vec<PathBuf>,
    index: BundleIndex,
    /// Each volume's frames, in file order.
    frames: Vec<Vec<Vec<u8>>>,
}

impl Bundle {
    fn read(paths: &[PathBuf]) -> Bundle {
        let readers: Vec<VolumeReader> = paths
            .iter()
            .map(|p| VolumeReader::open(p).unwrap())
            .collect();
        let index = readers[0].index().unwrap().clone();
        let frames = readers
            .iter()
            .enumerate()
            .map(|(i, v)| {
                assert_eq!(v.header().number as usize, i + 1);
                index
                    .volumes
                    .iter()
                    .find(|e| e.number == v.header().number)
                    .map(|e| {
                        (e.frames.iter())
                            .map(|f| v.read_frame(f.offset, f.len).unwrap())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        Bundle {
            paths: paths.to_vec(),
            index,
            frames,
        }
    }

    /// Writes every volume again from `frames` (the frame table follows what is written),
    /// finished with the index bytes `seal` makes of the index.
    fn write(&mut self, seal: impl Fn(&BundleIndex) -> Vec<u8>) {
        let mut pending = Vec::new();
        for (i, path) in self.paths.iter().enumerate() {
            let file = path.file_name().unwrap().to_str().unwrap();
            let (name, number) = parse_volume_file_name(file).unwrap();
            let dir = path.parent().unwrap();
            let mut w =
                VolumeWriter::create(dir, &name, number, self.index.bundle_id, 1 << 40).unwrap();
            if let Some(entry) = self.index.volumes.iter_mut().find(|e| e.number == number) {
                for (f, bytes) in entry.frames.iter_mut().zip(&self.frames[i]) {
                    f.offset = w.append_frame(bytes).unwrap();
                    f.len = bytes.len() as u32;
                }
            }
            pending.push(w.close_frames().unwrap());
        }
        let sealed = seal(&self.index);
        for p in pending {
            p.finish(self.index.volume_count, &sealed).unwrap();
        }
    }

    /// The description of blob `digest`, taken apart.
    fn description(&mut self, digest: &Digest) -> &mut Vec<u8> {
        let blob = self.index.blobs.iter_mut().find(|b| &b.digest == digest);
        &mut blob.unwrap().description
    }
}

/// A blob description's parts (layout in airlock-store's `transfer/description.rs`): the
/// magic, version and metadata, then the recipe's and the script's segments.
struct Described {
    head: Vec<u8>,
    recipe: Vec<(u64, Vec<u8>)>,
    script: Vec<(u64, Vec<u8>)>,
}

impl Described {
    fn parse(bytes: &[u8]) -> Described {
        assert_eq!(&bytes[..4], b"ABLD");
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let mut at = 12 + u32_at(8) as usize;
        let head = bytes[..at].to_vec();
        let mut lists = Vec::new();
        for _ in 0..2 {
            let n = u32_at(at);
            at += 4;
            let mut segs = Vec::new();
            for _ in 0..n {
                let start = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                let len = u32_at(at + 8) as usize;
                segs.push((start, bytes[at + 12..at + 12 + len].to_vec()));
                at += 12 + len;
            }
            lists.push(segs);
        }
        assert_eq!(at, bytes.len());
        let script = lists.pop().unwrap();
        let recipe = lists.pop().unwrap();
        Described {
            head,
            recipe,
            script,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        for segs in [&self.recipe, &self.script] {
            out.extend((segs.len() as u32).to_le_bytes());
            for (start, bytes) in segs {
                out.extend(start.to_le_bytes());
                out.extend((bytes.len() as u32).to_le_bytes());
                out.extend(bytes);
            }
        }
        out
    }

    /// Offset of the recipe's segment count.
    fn recipe_count_at(&self) -> usize {
        self.head.len()
    }

    /// Offset of the script's segment count.
    fn script_count_at(&self) -> usize {
        let recipe: usize = self.recipe.iter().map(|(_, b)| 12 + b.len()).sum();
        self.recipe_count_at() + 4 + recipe
    }
}

/// A zstd frame of one raw block holding `content`, whose header claims `claimed` bytes.
fn frame_claiming(claimed: u64, content: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header descriptor: an 8-byte content size, no single segment, no checksum; a
    // window of 1 MiB.
    f.push(0b1100_0000);
    f.push(10 << 3);
    f.extend_from_slice(&claimed.to_le_bytes());
    // One raw block, the last: (size << 3) | (type 0 << 1) | last.
    let header = ((content.len() as u32) << 3) | 1;
    f.extend_from_slice(&header.to_le_bytes()[..3]);
    f.extend_from_slice(content);
    f
}

/// A zstd stream (no size in its header) of `n` zero bytes: a few KiB.
fn zstd_bomb(n: usize) -> Vec<u8> {
    let bomb = zstd::stream::encode_all(&vec![0u8; n][..], 3).unwrap();
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&bomb).unwrap(),
        None
    );
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    bomb
}

/// Recomputes the check of index bytes (BLAKE3 of the header's first 32 bytes and the body).
fn recheck_index(bytes: &mut [u8]) {
    let mut h = blake3::Hasher::new();
    h.update(&bytes[..32]);
    h.update(&bytes[INDEX_HEADER_LEN..]);
    let check = h.finalize();
    bytes[32..48].copy_from_slice(&check.as_bytes()[..16]);
}

/// Index bytes of `ix` whose body has had `patch` applied, recompressed and checked again.
fn index_with_body(ix: &BundleIndex, patch: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let bytes = ix.encode().unwrap();
    let mut raw = zstd::stream::decode_all(&bytes[INDEX_HEADER_LEN..]).unwrap();
    patch(&mut raw);
    let body = zstd::bulk::compress(&raw, 3).unwrap();
    let mut out = bytes[..INDEX_HEADER_LEN].to_vec();
    out[16..24].copy_from_slice(&(raw.len() as u64).to_le_bytes());
    out[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    recheck_index(&mut out);
    out
}

/// Where the trailer of volume `path` places its index.
fn trailer_index_offset(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let trailer = &bytes[bytes.len() - VOLUME_TRAILER_LEN as usize..];
    u64::from_le_bytes(trailer[8..16].try_into().unwrap())
}

/// The error and its causes, as the CLI prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A vendor store with an image of plain layers and one of a gzip layer (a recipe of its tar
/// and a script); its bundle in a few volumes. Returns the volumes, the plain layers and the
/// gzip layer.
fn vendor_bundle(tmp: &Path) -> (Vec<PathBuf>, Vec<Digest>, Digest) {
    let vendor = open(&tmp.join("vendor"));
    let (_, _, layers) = image(&vendor, "shop/web", "1.0", 16);
    let text: Vec<u8> = (0..60_000u32)
        .flat_map(|i| format!("line {} of {}\n", i, i % 97).into_bytes())
        .chain(bytes(16, 100_000))
        .collect();
    let layer = put(&vendor, &gzip(&text));
    let manifest = link_manifest(
        &vendor,
        "shop/gz",
        b"{\"gz\":1}",
        std::slice::from_ref(&layer),
        None,
    );
    vendor
        .apply_repo_changes(&[RepoChange::SetTag {
            repo: "shop/gz".into(),
            tag: "1.0".into(),
            digest: manifest,
        }])
        .unwrap();
    let vols = export(
        &vendor,
        &["shop/web:1.0", "shop/gz:1.0"],
        &opts(&tmp.join("pristine"), "shop", 250_000, true),
    );
    assert!(vols.len() >= 2, "{} volumes", vols.len());
    (vols, layers, layer)
}

/// Copies the volumes into `dir` for one damage.
fn copy(vols: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    vols.iter()
        .map(|v| {
            let to = dir.join(v.file_name().unwrap());
            fs::copy(v, &to).unwrap();
            to
        })
        .collect()
}

/// Nothing of any bundle is in the site's store, and it verifies.
fn assert_untouched(site: &Store, dir: &Path) {
    assert!(site.blob_digests().unwrap().is_empty());
    assert!(site.repositories().unwrap().is_empty());
    assert_eq!(
        site.for_each_chunk_id(|_| {}).unwrap(),
        0,
        "no chunk stored"
    );
    assert!(!dir.join("imports").exists(), "no index saved");
    let report = site.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}

/// Imports `vols` (and checks them in a dry run): both refuse a blob description, naming the
/// first volume, its number and its index's offset; returns the error's chain.
fn refused_description(site: &Store, vols: &[PathBuf], digest: &Digest) -> String {
    let index_at = VolumeReader::open(&vols[0])
        .unwrap()
        .index_offset()
        .unwrap();
    for dry_run in [true, false] {
        let opts = ImportOptions {
            prompt: None,
            dry_run,
            trust: airlock_bundle::Trust::allow_unsigned(),
        };
        let err = import(site, vols, &opts, &NoProgress).unwrap_err();
        match &err {
            Error::DescriptionRefused {
                path,
                volume,
                offset,
                digest: d,
                ..
            } => {
                assert_eq!(path, &vols[0]);
                assert_eq!(*volume, Some(1));
                assert_eq!(*offset, index_at);
                assert_eq!(d, digest);
            }
            other => panic!("expected a refused description, got {other}"),
        }
        let text = chain(&err);
        let named = format!(
            "{} (volume 1): bundle index at offset {index_at}: blob {digest} is refused",
            vols[0].display()
        );
        assert!(text.starts_with(&named), "{text}");
        if !dry_run {
            return text;
        }
    }
    unreachable!()
}

#[test]
fn issue_16_segments_that_would_expand_past_the_limit_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (vols, layers, gz) = vendor_bundle(tmp.path());
    let site_dir = tmp.path().join("site");
    let site = open(&site_dir);

    // A recipe segment whose zstd frame header claims a terabyte (over five real bytes).
    let damaged = copy(&vols, &tmp.path().join("claims"));
    let mut b = Bundle::read(&damaged);
    let desc = b.description(&layers[1]);
    let mut d = Described::parse(desc);
    d.recipe[0].1 = frame_claiming(1 << 40, b"\x02\x01\x00\x00\x00x");
    *desc = d.encode();
    b.write(|ix| ix.encode().unwrap());
    let text = refused_description(&site, &damaged, &layers[1]);
    assert!(
        text.ends_with(&format!(
            "recipe segment at 0 of blob {}: its zstd frame claims 1099511627776 bytes, over \
             the limit of {MAX_SEGMENT_RAW_BYTES}",
            layers[1]
        )),
        "{text}"
    );
    assert_untouched(&site, &site_dir);

    // A script segment that is a zstd bomb: no size in its header, 1 byte past the limit.
    let damaged = copy(&vols, &tmp.path().join("bomb"));
    let mut b = Bundle::read(&damaged);
    let desc = b.description(&gz);
    let mut d = Described::parse(desc);
    assert!(
        !d.script.is_empty(),
        "the gzip layer is rebuilt by a script"
    );
    d.script[0].1 = zstd_bomb(MAX_SEGMENT_RAW_BYTES + 1);
    *desc = d.encode();
    b.write(|ix| ix.encode().unwrap());
    let text = refused_description(&site, &damaged, &gz);
    assert!(
        text.ends_with(&format!(
            "script segment at 0 of blob {gz}: it expands past the limit of \
             {MAX_SEGMENT_RAW_BYTES} bytes"
        )),
        "{text}"
    );
    assert_untouched(&site, &site_dir);

    // The pristine bundle then imports whole.
    let report = import(&site, &vols, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(site.has_blob(&gz).unwrap() && site.has_blob(&layers[1]).unwrap());
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_16_lengths_of_u32_max_in_a_blob_description_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (vols, _, gz) = vendor_bundle(tmp.path());
    let site_dir = tmp.path().join("site");
    let site = open(&site_dir);
    let mut pristine = Bundle::read(&vols);
    let d = Described::parse(pristine.description(&gz));
    let recipe_count = d.recipe_count_at();
    // The first recipe segment's length: after the count, its start (u64).
    let first_len = recipe_count + 4 + 8;
    let script_count = d.script_count_at();
    for (case, at, why) in [
        ("meta", 8, "blob description ends at byte"),
        ("recipe-count", recipe_count, "claims 4294967295 segments"),
        ("segment-len", first_len, "blob description ends at byte"),
        ("script-count", script_count, "claims 4294967295 segments"),
    ] {
        let damaged = copy(&vols, &tmp.path().join(case));
        let mut b = Bundle::read(&damaged);
        let desc = b.description(&gz);
        desc[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        b.write(|ix| ix.encode().unwrap());
        let text = refused_description(&site, &damaged, &gz);
        assert!(text.contains(why), "{case}: {text}");
        assert_untouched(&site, &site_dir);
    }
}

#[test]
fn issue_16_lengths_of_u64_max_and_u32_max_in_the_index_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (vols, layers, _) = vendor_bundle(tmp.path());
    let site_dir = tmp.path().join("site");
    let site = open(&site_dir);

    // The index header's raw length, u64::MAX: every volume's copy is refused by name.
    let damaged = copy(&vols, &tmp.path().join("raw-len"));
    Bundle::read(&damaged).write(|ix| {
        let mut bytes = ix.encode().unwrap();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        recheck_index(&mut bytes);
        bytes
    });
    let err = import(&site, &damaged, &crate::common::unsigned(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::NoIndex { .. }), "{err}");
    let text = err.to_string();
    for (i, v) in damaged.iter().enumerate() {
        let named = format!(
            "volume {}: {}: bundle index is corrupt: body of 18446744073709551615 bytes is over \
             the limit of 1073741824 at offset {}",
            i + 1,
            v.display(),
            trailer_index_offset(v)
        );
        assert!(text.contains(&named), "{named}\nnot in\n{text}");
    }
    assert_untouched(&site, &site_dir);

    // The first blob description's length inside the index body, u32::MAX.
    let damaged = copy(&vols, &tmp.path().join("desc-len"));
    let mut b = Bundle::read(&damaged);
    let first = b.index.blobs[0].description.clone();
    b.write(|ix| {
        index_with_body(ix, |raw| {
            let mut needle = (first.len() as u32).to_le_bytes().to_vec();
            needle.extend_from_slice(&first[..16]);
            let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
            raw[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        })
    });
    let err = import(&site, &damaged, &crate::common::unsigned(), &NoProgress).unwrap_err();
    let text = err.to_string();
    let named = format!(
        "volume 1: {}: bundle index is corrupt: body: blob description at offset ",
        damaged[0].display()
    );
    assert!(text.contains(&named), "{text}");
    assert!(text.contains(" needs 4294967295 bytes, "), "{text}");
    let index_at = trailer_index_offset(&damaged[0]);
    assert!(
        text.contains(&format!(" remain at offset {index_at}")),
        "{text}"
    );
    assert_untouched(&site, &site_dir);

    // An index copy claiming 2 GiB (a sparse file) is refused before it is read.
    let damaged = copy(&vols, &tmp.path().join("huge"));
    let head = fs::read(&damaged[0]).unwrap()[..VOLUME_HEADER_LEN as usize].to_vec();
    let len = (2u64 << 30) + VOLUME_HEADER_LEN + VOLUME_TRAILER_LEN;
    let file = fs::File::create(&damaged[0]).unwrap();
    file.set_len(len).unwrap();
    file.write_all_at(&head, 0).unwrap();
    let mut trailer = b"AIRLKEND".to_vec();
    trailer.extend(VOLUME_HEADER_LEN.to_le_bytes());
    trailer.extend((2u64 << 30).to_le_bytes());
    trailer.extend_from_slice(&head[40..72]);
    // No signature (format 2).
    trailer.extend(0u64.to_le_bytes());
    trailer.extend([0u8; 16]);
    let check = blake3::hash(&trailer);
    trailer.extend_from_slice(&check.as_bytes()[..16]);
    file.write_all_at(&trailer, len - VOLUME_TRAILER_LEN)
        .unwrap();
    drop(file);
    let err = import(
        &site,
        &damaged[..1],
        &crate::common::unsigned(),
        &NoProgress,
    )
    .unwrap_err();
    let named = format!(
        "volume 1: {}: index of 2147483648 bytes is too large at offset 88",
        damaged[0].display()
    );
    assert!(err.to_string().contains(&named), "{err}");
    assert_untouched(&site, &site_dir);

    // A frame length of u32::MAX and a frame offset of u64::MAX in the frame table: the
    // frames are named as damaged, nothing of them is read, no tag moves.
    let damaged = copy(&vols, &tmp.path().join("frame-len"));
    let mut b = Bundle::read(&damaged);
    let at =
        |ix: &BundleIndex, number: u32| ix.volumes.iter().position(|v| v.number == number).unwrap();
    b.write(|ix| {
        let mut ix = ix.clone();
        let (one, two) = (at(&ix, 1), at(&ix, 2));
        ix.volumes[one].frames[0].len = u32::MAX;
        ix.volumes[two].frames[0].offset = u64::MAX;
        ix.encode().unwrap()
    });
    let report = import(&site, &damaged, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(!report.is_complete());
    let bundle = &report.bundles[0];
    let one = &b.index.volumes[at(&b.index, 1)].frames[0];
    let two = &b.index.volumes[at(&b.index, 2)].frames[0];
    for (f, volume, offset) in [(one, 1, one.offset), (two, 2, u64::MAX)] {
        let d = bundle
            .damaged
            .iter()
            .find(|d| d.volume == volume && d.offset == offset)
            .unwrap_or_else(|| panic!("{:?}", bundle.damaged));
        assert_eq!(d.path, damaged[volume as usize - 1]);
        assert!(
            d.what.contains("do not lie within the frames"),
            "{}",
            d.what
        );
        assert_eq!(
            site.missing_chunks(&f.chunks).unwrap().len(),
            f.chunks.len()
        );
    }
    // Blobs whose chunks all came in are checked and kept for the resumed import (issue 14);
    // no tag moves, and the damaged frames' blobs are not there.
    assert!(site.repositories().unwrap().is_empty());
    assert!(!site.has_blob(&layers[0]).unwrap());
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_16_a_frame_whose_payload_expands_past_its_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (vols, _, _) = vendor_bundle(tmp.path());
    let site_dir = tmp.path().join("site");
    let site = open(&site_dir);
    let damaged = copy(&vols, &tmp.path().join("frame-bomb"));
    let mut b = Bundle::read(&damaged);
    // The first frame keeps its chunk table (and so its raw length); its payload becomes a
    // zstd stream of 80 MiB, past any frame's limit of 64 MiB.
    let frame = &mut b.frames[0][0];
    let n = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
    let table_end = 32 + 36 * n;
    let bomb = zstd_bomb(80 << 20);
    frame.truncate(table_end);
    frame.extend_from_slice(&bomb);
    frame[12..16].copy_from_slice(&(bomb.len() as u32).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&frame[..16]);
    h.update(&frame[32..]);
    let check = h.finalize();
    frame[16..32].copy_from_slice(&check.as_bytes()[..16]);
    b.write(|ix| ix.encode().unwrap());
    let first = &b.index.volumes[0].frames[0];

    let report = import(&site, &damaged, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(!report.is_complete());
    let d = &report.bundles[0].damaged;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].path, damaged[0]);
    assert_eq!(d[0].volume, 1);
    assert_eq!(d[0].offset, first.offset);
    assert!(d[0].what.contains("decompressing frame"), "{}", d[0].what);
    assert_eq!(
        site.missing_chunks(&first.chunks).unwrap().len(),
        first.chunks.len(),
        "none of its chunks is stored"
    );
    // Blobs whose chunks all came in are checked and kept for the resumed import (issue 14),
    // never one that needs the refused frame; no tag moves.
    for d in site.blob_digests().unwrap() {
        let ids = site.describe_blob(&d).unwrap().chunk_ids().unwrap();
        assert!(ids.iter().all(|id| !first.chunks.contains(id)), "{d}");
    }
    assert!(site.repositories().unwrap().is_empty());
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_16_counts_of_u64_max_in_an_inventory_and_an_oversized_index_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("site.inventory");
    let mut b = Inventory::builder("fastcdc 64K/256K/1M");
    b.add_chunks((0..10u32).map(|i| airlock_store::ChunkId::of(&i.to_le_bytes())));
    b.add_blob(Digest::sha256(b"x"));
    b.build().write(&path).unwrap();
    let good = fs::read(&path).unwrap();
    // The chunk count follows the magic, version, flags, time and the format string.
    let format_len = u32::from_le_bytes(good[24..28].try_into().unwrap()) as usize;
    let chunk_count = 28 + format_len;
    let blob_count = chunk_count + 8 + 10 * 32;
    for (at, value, why) in [
        (
            chunk_count,
            &u64::MAX.to_le_bytes()[..],
            format!("chunk count 18446744073709551615 at offset {chunk_count} exceeds the file"),
        ),
        (
            blob_count,
            &u32::MAX.to_le_bytes()[..],
            format!("blob count at offset {blob_count} claims 4294967295 entries"),
        ),
    ] {
        let mut bytes = good.clone();
        bytes[at..at + value.len()].copy_from_slice(value);
        let end = bytes.len() - 32;
        let check = blake3::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(check.as_bytes());
        fs::write(&path, &bytes).unwrap();
        let err = Inventory::read(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains(&why), "{err}");
    }

    // A standalone index file (`export --since`) larger than any index is refused unread.
    let index = tmp.path().join("big.index.airlock");
    let file = fs::File::create(&index).unwrap();
    file.set_len(3 << 30).unwrap();
    drop(file);
    let err = BundleIndex::read_file(&index).unwrap_err().to_string();
    assert!(
        err.contains(&index.display().to_string()) && err.contains("larger than the limit"),
        "{err}"
    );
}
