//! Integrity checks and space accounting.
//!
//! `verify` reads every frame of every pack the index references (checksum, decompression,
//! each chunk's BLAKE3), every recipe, every chunk reference count, and with
//! [`Verify::Full`] rebuilds every blob to check its digest and re-hashes every file of the
//! blob cache. Each defect names the pack and offset, or the blob, and the blobs it affects.
//! A cache file that does not match its digest is removed and reported apart
//! ([`VerifyReport::cache`]), not as a defect: the cache is not the store, nothing is lost, and
//! the next pull rebuilds the blob from the store. Staged blobs (issue 14)
//! are checked from their files (`staged`).

use std::{
    collections::{BTreeSet, HashMap, HashSet, hash_map::Entry as Slot},
    fmt, io,
};

use airlock_chunker::ChunkId;

use crate::{
    CacheCheck, Digest, Error, HashingReader, PackId, Result, Store,
    index::{BlobRecord, ChunkRecord, LinkKind, ReadTx},
    pack,
};

const PAGE: usize = 4096;

/// How deep `verify` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Packs, chunks, recipes, reference counts, links; every blob's digest, rebuilt; every
    /// blob cache file, re-hashed.
    Full,
    /// Everything but rebuilding blobs for their digests.
    Quick,
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A pack file the index references is not there.
    PackMissing {
        /// The pack.
        pack: PackId,
        /// Blobs that cannot be read because of it.
        blobs: Vec<Digest>,
    },
    /// A pack file is shorter than the index says.
    PackTruncated {
        /// The pack.
        pack: PackId,
        /// Bytes on disk.
        actual: u64,
        /// Bytes the index expects.
        expected: u64,
        /// Blobs that cannot be read because of it.
        blobs: Vec<Digest>,
    },
    /// A frame fails its checksum, does not decompress, or holds a chunk that fails its hash;
    /// or the pack's structure breaks at `offset` (its header, a frame header, its seal).
    FrameCorrupt {
        /// The pack.
        pack: PackId,
        /// Offset of the frame in the pack.
        offset: u64,
        /// What is wrong.
        what: String,
        /// Blobs that cannot be read because of it.
        blobs: Vec<Digest>,
    },
    /// A recipe names a chunk the index does not have.
    ChunkMissing {
        /// The chunk.
        chunk: ChunkId,
        /// Blobs whose recipe names it.
        blobs: Vec<Digest>,
    },
    /// A recipe segment cannot be decoded or does not add up to the blob's size.
    RecipeDamaged {
        /// The blob.
        digest: Digest,
        /// What is wrong.
        what: String,
    },
    /// A blob whose script holds reconstruction data of a version this airlock does not
    /// rebuild (see [`crate::Error::RebuildUnsupported`]): nothing is damaged.
    RebuildUnsupported {
        /// The blob.
        digest: Digest,
        /// Which version it would take.
        what: String,
    },
    /// A blob rebuilds to other bytes than its digest says.
    DigestMismatch {
        /// The blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A chunk's reference count differs from the number of recipes naming it.
    RefCountWrong {
        /// The chunk.
        chunk: ChunkId,
        /// The count in the index.
        recorded: u32,
        /// The count found.
        actual: u32,
    },
    /// A staged blob's file is missing.
    StagedMissing {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: std::path::PathBuf,
    },
    /// A staged blob's file has another length than staged, or hashes to another digest.
    StagedCorrupt {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: std::path::PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A manifest linked in a repository references a blob or manifest that is not stored and
    /// was not left out on purpose (see [`crate::RepoChange::MarkAbsent`]).
    ChildMissing {
        /// A repository linking the manifest.
        repo: String,
        /// The manifest.
        manifest: Digest,
        /// What it references.
        child: Digest,
    },
    /// A repository links a digest that is not stored.
    LinkDangling {
        /// The repository.
        repo: String,
        /// The digest.
        digest: Digest,
    },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |blobs: &[Digest]| -> String {
            if blobs.is_empty() {
                "no stored blob".into()
            } else {
                blobs
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self {
            Defect::PackMissing { pack, blobs } => {
                write!(f, "pack {pack} is missing; affects {}", list(blobs))
            }
            Defect::PackTruncated {
                pack,
                actual,
                expected,
                blobs,
            } => write!(
                f,
                "pack {pack} is truncated at offset {actual} (expected {expected} bytes); affects {}",
                list(blobs)
            ),
            Defect::FrameCorrupt {
                pack,
                offset,
                what,
                blobs,
            } => write!(
                f,
                "pack {pack} is corrupt at offset {offset}: {what}; affects {}",
                list(blobs)
            ),
            Defect::ChunkMissing { chunk, blobs } => {
                write!(
                    f,
                    "chunk {chunk} is missing from the index; affects {}",
                    list(blobs)
                )
            }
            Defect::RecipeDamaged { digest, what } => {
                write!(f, "recipe of blob {digest} is damaged: {what}")
            }
            Defect::RebuildUnsupported { digest, what } => {
                write!(f, "blob {digest} cannot be rebuilt by this airlock: {what}")
            }
            Defect::DigestMismatch { digest, actual } => {
                write!(f, "blob {digest} rebuilds to content hashing to {actual}")
            }
            Defect::RefCountWrong {
                chunk,
                recorded,
                actual,
            } => write!(
                f,
                "chunk {chunk} has reference count {recorded}, {actual} recipes use it"
            ),
            Defect::StagedMissing { digest, path } => {
                write!(
                    f,
                    "staged blob {digest} is missing its file {}",
                    path.display()
                )
            }
            Defect::StagedCorrupt { digest, path, what } => {
                write!(
                    f,
                    "staged blob {digest} is corrupt ({}): {what}",
                    path.display()
                )
            }
            Defect::LinkDangling { repo, digest } => {
                write!(f, "repository {repo} links {digest}, which is not stored")
            }
            Defect::ChildMissing {
                repo,
                manifest,
                child,
            } => write!(
                f,
                "manifest {manifest} of {repo} references {child}, which is not stored"
            ),
        }
    }
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Packs checked.
    pub packs: u64,
    /// Frames checked.
    pub frames: u64,
    /// Chunks checked.
    pub chunks: u64,
    /// Blobs checked.
    pub blobs: u64,
    /// Bytes of blob content rebuilt and hashed ([`Verify::Full`]).
    pub bytes_hashed: u64,
    /// Everything wrong, in the order found.
    pub defects: Vec<Defect>,
    /// The blob cache's files checked and dropped ([`Verify::Full`]); never a defect.
    pub cache: CacheCheck,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.defects.is_empty()
    }
}

/// Calls `f` on every blob with its record, a page at a time, all from one snapshot.
pub(crate) fn for_each_blob(
    rtx: &ReadTx<'_>,
    mut f: impl FnMut(&Digest, &BlobRecord) -> Result<()>,
) -> Result<()> {
    let mut after: Option<Digest> = None;
    loop {
        let page = rtx.blobs_page(after.as_ref(), PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (d, r) in &page {
            f(d, r)?;
        }
    }
}

/// Calls `f` on every chunk record, a page at a time, all from one snapshot.
pub(crate) fn for_each_chunk(
    rtx: &ReadTx<'_>,
    mut f: impl FnMut(&ChunkId, &ChunkRecord) -> Result<()>,
) -> Result<()> {
    let mut after: Option<ChunkId> = None;
    loop {
        let page = rtx.chunks_page(after.as_ref(), PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(*last);
        for (id, r) in &page {
            f(id, r)?;
        }
    }
}

impl Store {
    /// Checks the whole store and names every defect; see [`Verify`] for how deep. Safe while
    /// puts continue: it checks one snapshot of the index, and GC waits until it is done.
    pub fn verify(&self, depth: Verify) -> Result<VerifyReport> {
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        let rtx = self.inner.index.read()?;
        let mut report = VerifyReport::default();
        let mut packs = rtx.packs()?;
        packs.sort_by_key(|(id, _)| *id);

        // 1. Packs: presence and length.
        let mut bad_packs: HashMap<PackId, Defect> = HashMap::new();
        // Lengths of the pack files present. Files are opened through the store's bounded
        // handle cache: a large store has more packs than a process may have open files.
        let mut present: HashMap<PackId, u64> = HashMap::new();
        for &(id, rec) in &packs {
            report.packs += 1;
            let path = pack::pack_path(&self.inner.packs_dir, id);
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    bad_packs.insert(
                        id,
                        Defect::PackMissing {
                            pack: id,
                            blobs: vec![],
                        },
                    );
                }
                Err(e) => {
                    return Err(Error::Io {
                        op: "reading metadata of",
                        path,
                        source: e,
                    });
                }
                Ok(m) => {
                    let actual = m.len();
                    if actual < rec.len {
                        bad_packs.insert(
                            id,
                            Defect::PackTruncated {
                                pack: id,
                                actual,
                                expected: rec.len,
                                blobs: vec![],
                            },
                        );
                    }
                    present.insert(id, actual);
                }
            }
        }

        // 2. Frames, reached through the chunks that live in them; each frame read once.
        let mut frames: HashMap<(PackId, u64), Option<String>> = HashMap::new();
        let mut bad_chunks: HashMap<ChunkId, (PackId, u64)> = HashMap::new();
        let mut refs: HashMap<ChunkId, u32> = HashMap::new();
        for_each_chunk(&rtx, |id, rec| {
            report.chunks += 1;
            refs.insert(*id, rec.refs);
            let loc = rec.loc;
            let key = (loc.pack, loc.frame_offset);
            if !present.contains_key(&loc.pack) {
                // A missing pack, or one the index lost track of: either way unreadable.
                bad_packs.entry(loc.pack).or_insert(Defect::PackMissing {
                    pack: loc.pack,
                    blobs: vec![],
                });
                bad_chunks.insert(*id, key);
                return Ok(());
            }
            let outcome = match frames.entry(key) {
                Slot::Occupied(o) => o.into_mut(),
                Slot::Vacant(v) => {
                    report.frames += 1;
                    let file = self.inner.pack_file(loc.pack)?;
                    v.insert(check_frame(&file, loc.pack, loc.frame_offset, loc.frame_len).err())
                }
            };
            if outcome.is_some() {
                bad_chunks.insert(*id, key);
            }
            Ok(())
        })?;

        // 3. Every other frame of every pack (copies no chunk uses any more still have to
        // be sound), the pack header, and the seal of sealed packs.
        for &(id, rec) in &packs {
            let Some(&actual) = present.get(&id) else {
                continue;
            };
            let file = self.inner.pack_file(id)?;
            let mut scanned = Vec::new();
            let mut broken = false;
            for frame in pack::scan_frames(&file, id, rec.len.min(actual)) {
                match frame {
                    Ok(f) => {
                        frames.entry((id, f.offset)).or_insert_with(|| {
                            report.frames += 1;
                            check_frame(&file, id, f.offset, f.len).err()
                        });
                        scanned.push(f);
                    }
                    Err(e) => {
                        let (offset, what) = corrupt_at(e);
                        frames.entry((id, offset)).or_insert(Some(what));
                        broken = true;
                    }
                }
            }
            if rec.sealed
                && !broken
                && actual >= rec.len
                && let Err(e) = pack::check_seal(&file, id, rec.len, &scanned)
            {
                let (offset, what) = corrupt_at(e);
                frames.entry((id, offset)).or_insert(Some(what));
            }
        }

        // 4. Blobs: recipes, chunk presence, reference counts, digests.
        let mut counted: HashMap<ChunkId, u32> = HashMap::new();
        let mut affected_frames: HashMap<(PackId, u64), BTreeSet<Digest>> = HashMap::new();
        let mut affected_packs: HashMap<PackId, BTreeSet<Digest>> = HashMap::new();
        let mut missing: HashMap<ChunkId, BTreeSet<Digest>> = HashMap::new();
        let mut damaged_blobs: HashSet<Digest> = HashSet::new();
        let mut blob_defects = Vec::new();
        for_each_blob(&rtx, |digest, rec| {
            report.blobs += 1;
            let ids = match rtx.blob_chunk_ids(digest, rec)? {
                Ok(ids) => ids,
                Err(what) => {
                    blob_defects.push(Defect::RecipeDamaged {
                        digest: digest.clone(),
                        what,
                    });
                    damaged_blobs.insert(digest.clone());
                    return Ok(());
                }
            };
            for id in &ids {
                *counted.entry(*id).or_default() += 1;
                if !refs.contains_key(id) {
                    missing.entry(*id).or_default().insert(digest.clone());
                    damaged_blobs.insert(digest.clone());
                } else if let Some(frame) = bad_chunks.get(id) {
                    affected_frames
                        .entry(*frame)
                        .or_default()
                        .insert(digest.clone());
                    affected_packs
                        .entry(frame.0)
                        .or_default()
                        .insert(digest.clone());
                    damaged_blobs.insert(digest.clone());
                }
            }
            if depth == Verify::Full && !damaged_blobs.contains(digest) {
                // From the packs, never the blob cache: this checks the store.
                match self.open_range(digest, 0..rec.size, false) {
                    Ok(reader) => {
                        let mut h = HashingReader::new(reader, digest.algorithm());
                        match io::copy(&mut h, &mut io::sink()) {
                            Ok(n) => {
                                report.bytes_hashed += n;
                                let (actual, _) = h.finish();
                                if actual != *digest {
                                    blob_defects.push(Defect::DigestMismatch {
                                        digest: digest.clone(),
                                        actual,
                                    });
                                }
                            }
                            Err(e) => {
                                blob_defects.push(read_defect(digest, crate::unwrap_io(digest, e)))
                            }
                        }
                    }
                    Err(e) => blob_defects.push(read_defect(digest, e)),
                }
            }
            Ok(())
        })?;

        // Assemble: pack-level defects first, then frames, chunks, blobs, counts, links.
        let mut pack_ids: Vec<_> = bad_packs.keys().copied().collect();
        pack_ids.sort();
        let mut truncated = HashSet::new();
        for id in pack_ids {
            let blobs: Vec<Digest> = affected_packs
                .get(&id)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            match bad_packs.remove(&id) {
                Some(Defect::PackMissing { pack, .. }) => {
                    report.defects.push(Defect::PackMissing { pack, blobs })
                }
                Some(Defect::PackTruncated {
                    pack,
                    actual,
                    expected,
                    ..
                }) => {
                    truncated.insert(pack);
                    report.defects.push(Defect::PackTruncated {
                        pack,
                        actual,
                        expected,
                        blobs,
                    })
                }
                Some(other) => report.defects.push(other),
                None => {}
            }
        }
        let mut frame_keys: Vec<_> = frames
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|w| (*k, w.clone())))
            .collect();
        frame_keys.sort();
        for ((pack, offset), what) in frame_keys {
            let blobs = affected_frames
                .get(&(pack, offset))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            report.defects.push(Defect::FrameCorrupt {
                pack,
                offset,
                what,
                blobs,
            });
        }
        let mut missing: Vec<_> = missing.into_iter().collect();
        missing.sort_by_key(|(id, _)| *id);
        for (chunk, blobs) in missing {
            report.defects.push(Defect::ChunkMissing {
                chunk,
                blobs: blobs.into_iter().collect(),
            });
        }
        report.defects.extend(blob_defects);
        let mut wrong: Vec<_> = refs
            .iter()
            .filter_map(|(id, &recorded)| {
                let actual = counted.get(id).copied().unwrap_or(0);
                (actual != recorded).then_some(Defect::RefCountWrong {
                    chunk: *id,
                    recorded,
                    actual,
                })
            })
            .collect();
        wrong.sort_by_key(|d| match d {
            Defect::RefCountWrong { chunk, .. } => *chunk,
            _ => ChunkId::from_bytes([0; 32]),
        });
        report.defects.extend(wrong);
        self.verify_staged(&rtx, depth, &mut report)?;
        let links = rtx.all_links()?;
        let mut manifests_seen: HashSet<Digest> = HashSet::new();
        for (repo, digest, kind) in &links {
            if !kind.contains(LinkKind::MANIFEST) || !manifests_seen.insert(digest.clone()) {
                continue;
            }
            let absent = rtx.absent(digest)?;
            for child in rtx.edges(digest)? {
                if !absent.contains(&child) && !rtx.holds_blob(&child)? {
                    report.defects.push(Defect::ChildMissing {
                        repo: repo.clone(),
                        manifest: digest.clone(),
                        child,
                    });
                }
            }
        }
        for (repo, digest, _) in links {
            if !rtx.holds_blob(&digest)? {
                report.defects.push(Defect::LinkDangling { repo, digest });
            }
        }
        if depth == Verify::Full {
            report.cache = self.inner.cache.check(|d| Ok(rtx.blob(d)?.is_some()))?;
        }
        Ok(report)
    }
}

/// Reads a frame and checks every chunk it lists; `Err` describes the first problem.
fn check_frame(
    file: &std::fs::File,
    pack: PackId,
    offset: u64,
    len: u32,
) -> std::result::Result<(), String> {
    let frame = pack::read_frame(file, pack, offset, len).map_err(|e| corrupt_at(e).1)?;
    let mut at = 0usize;
    for (id, len) in &frame.entries {
        let end = at + *len as usize;
        let ok = frame
            .raw
            .get(at..end)
            .is_some_and(|d| ChunkId::of(d) == *id);
        if !ok {
            return Err(format!("chunk {id} does not match its hash"));
        }
        at = end;
    }
    Ok(())
}

/// What a failed read of a blob's bytes says about it.
fn read_defect(digest: &Digest, e: Error) -> Defect {
    match e {
        Error::RebuildUnsupported { digest, what } => Defect::RebuildUnsupported { digest, what },
        e => Defect::RecipeDamaged {
            digest: digest.clone(),
            what: e.to_string(),
        },
    }
}

/// The offset and description of a pack error.
fn corrupt_at(e: Error) -> (u64, String) {
    match e {
        Error::PackCorrupt { offset, what, .. } => (offset, what),
        other => (0, other.to_string()),
    }
}

/// Defects only a damaged index can hold, made by editing the index directly: fixtures named by
/// defect, as in the integration tests for pack damage.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{RngCore, SeedableRng};

    use super::*;
    use crate::{
        PutOptions, StoreOptions,
        index::{LinkKind, SegmentList},
        recipe::{Entry, RecipeBuilder},
    };

    fn seeded(seed: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// A store with three blobs: `a` and `b` share their first 100 kB, `c` shares nothing.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        blobs: Vec<(Digest, Vec<u8>)>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            chunker: airlock_chunker::ChunkerParams::new(1024, 4096, 16384).unwrap(),
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let shared = seeded(1, 100_000);
        let mut blobs = Vec::new();
        for tail in [2, 3] {
            let mut data = shared.clone();
            data.extend(seeded(tail, 50_000));
            blobs.push(data);
        }
        blobs.push(seeded(4, 80_000));
        let blobs: Vec<_> = blobs
            .into_iter()
            .map(|data| {
                let d = Digest::sha256(&data);
                store
                    .put_blob(&d, &data[..], PutOptions::default())
                    .unwrap();
                (d, data)
            })
            .collect();
        assert!(store.verify(Verify::Full).unwrap().is_clean());
        Fixture {
            _dir: dir,
            store,
            blobs,
        }
    }

    fn chunks_of(store: &Store, digest: &Digest) -> Vec<ChunkId> {
        let rtx = store.inner.index.read().unwrap();
        let size = rtx.blob(digest).unwrap().unwrap().size;
        let entries = rtx.recipe_entries(digest, size).unwrap().unwrap();
        entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Chunk { id, .. } => Some(id),
                Entry::Inline(_) => None,
            })
            .collect()
    }

    fn read(store: &Store, digest: &Digest) -> Result<Vec<u8>> {
        store.read_blob(digest)
    }

    #[test]
    fn with_missing_chunk() {
        let f = fixture();
        let (a, b, c) = (&f.blobs[0], &f.blobs[1], &f.blobs[2]);
        let shared = chunks_of(&f.store, &a.0)[0];
        assert_eq!(chunks_of(&f.store, &b.0)[0], shared);
        let mut tx = f.store.inner.index.write().unwrap();
        tx.remove_chunk(&shared).unwrap();
        tx.commit().unwrap();
        let report = f.store.verify(Verify::Full).unwrap();
        let mut both = vec![a.0.clone(), b.0.clone()];
        both.sort();
        assert_eq!(
            report.defects,
            vec![Defect::ChunkMissing {
                chunk: shared,
                blobs: both
            }]
        );
        for blob in [a, b] {
            let err = read(&f.store, &blob.0).unwrap_err();
            assert!(
                matches!(&err, Error::ChunkMissing { digest, chunk }
                    if *digest == blob.0 && *chunk == shared.to_hex()),
                "{err}"
            );
        }
        assert_eq!(read(&f.store, &c.0).unwrap(), c.1);
    }

    #[test]
    fn with_wrong_ref_count() {
        let f = fixture();
        let id = chunks_of(&f.store, &f.blobs[2].0)[1];
        let mut tx = f.store.inner.index.write().unwrap();
        let mut rec = tx.chunk(&id).unwrap().unwrap();
        assert_eq!(rec.refs, 1);
        rec.refs = 5;
        tx.put_chunk(&id, &rec).unwrap();
        tx.commit().unwrap();
        let report = f.store.verify(Verify::Quick).unwrap();
        assert_eq!(
            report.defects,
            vec![Defect::RefCountWrong {
                chunk: id,
                recorded: 5,
                actual: 1
            }]
        );
    }

    #[test]
    fn with_damaged_recipe() {
        let f = fixture();
        let (d, data) = &f.blobs[2];
        let mut tx = f.store.inner.index.write().unwrap();
        let rec = tx.blob(d).unwrap().unwrap();
        tx.put_blob(d, &rec, &[(0, b"not a recipe".to_vec())], &[])
            .unwrap();
        tx.commit().unwrap();
        let report = f.store.verify(Verify::Full).unwrap();
        // Its chunks are no longer counted either.
        assert!(
            matches!(&report.defects[0], Defect::RecipeDamaged { digest, .. } if digest == d),
            "{:?}",
            report.defects
        );
        assert!(
            report.defects[1..]
                .iter()
                .all(|d| matches!(d, Defect::RefCountWrong { actual: 0, .. }))
        );
        let err = read(&f.store, d).unwrap_err();
        assert!(matches!(err, Error::Index { .. }), "{err}");
        assert_ne!(read(&f.store, d).ok().as_ref(), Some(data));
        assert_eq!(read(&f.store, &f.blobs[0].0).unwrap(), f.blobs[0].1);
    }

    /// Issue 13: a record names the preflate-rs version of its script's correction data; a blob
    /// whose version this airlock does not rebuild is named, never fed to another version, and
    /// a record that names none speaks for the version of `store.json`.
    #[test]
    fn with_script_of_another_preflate_version() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            blob_cache_size: 0,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let tar: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&tar).unwrap();
        let gz = e.finish().unwrap();
        let d = Digest::sha256(&gz);
        store.put_blob(&d, &gz[..], PutOptions::default()).unwrap();
        let rec = store.inner.index.read().unwrap().blob(&d).unwrap().unwrap();
        assert_eq!(
            rec.preflate.as_deref(),
            Some(airlock_regzip::PREFLATE_VERSION)
        );
        let rewrite = |preflate: Option<&str>| {
            let rec = BlobRecord {
                preflate: preflate.map(str::to_owned),
                ..rec.clone()
            };
            let rtx = store.inner.index.read().unwrap();
            let recipe = rtx.segments(SegmentList::Recipe, &d).unwrap();
            let script = rtx.segments(SegmentList::Script, &d).unwrap();
            drop(rtx);
            let mut tx = store.inner.index.write().unwrap();
            tx.put_blob(&d, &rec, &recipe, &script).unwrap();
            tx.commit().unwrap();
        };
        rewrite(Some("preflate-rs 0.1"));
        let err = read(&store, &d).unwrap_err();
        assert!(matches!(err, Error::RebuildUnsupported { .. }), "{err}");
        assert!(err.to_string().contains("preflate-rs 0.1"), "{err}");
        let report = store.verify(Verify::Full).unwrap();
        assert!(
            matches!(&report.defects[..], [Defect::RebuildUnsupported { digest, .. }] if *digest == d),
            "{:?}",
            report.defects
        );
        rewrite(None);
        assert_eq!(read(&store, &d).unwrap(), gz);
        assert!(store.verify(Verify::Full).unwrap().is_clean());
    }

    #[test]
    fn with_damaged_script() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreOptions {
                blob_cache_size: 0,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let tar: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&tar).unwrap();
        let gz = e.finish().unwrap();
        let d = Digest::sha256(&gz);
        store.put_blob(&d, &gz[..], PutOptions::default()).unwrap();
        let rec = store.inner.index.read().unwrap().blob(&d).unwrap().unwrap();
        assert!(matches!(rec.kind, crate::index::RecipeKind::Deflate { .. }));
        assert!(store.verify(Verify::Full).unwrap().is_clean());
        let mut tx = store.inner.index.write().unwrap();
        tx.put_blob(&d, &rec, &[], &[(0, b"not a script".to_vec())])
            .unwrap();
        tx.commit().unwrap();
        let report = store.verify(Verify::Full).unwrap();
        assert!(
            matches!(&report.defects[0], Defect::RecipeDamaged { digest, .. } if *digest == d),
            "{:?}",
            report.defects
        );
        let err = read(&store, &d).unwrap_err();
        assert!(err.to_string().contains(&d.to_string()), "{err}");
    }

    #[test]
    fn with_wrong_digest() {
        let f = fixture();
        let (d, data) = &f.blobs[2];
        // A blob record under another digest whose recipe rebuilds `c`'s bytes.
        let liar = Digest::sha256(b"something else entirely");
        let mut tx = f.store.inner.index.write().unwrap();
        let rec = tx.blob(d).unwrap().unwrap();
        let mut recipe = RecipeBuilder::default();
        let entries = tx.recipe_entries(d, rec.size).unwrap().unwrap();
        let mut distinct = HashSet::new();
        for e in &entries {
            match e {
                Entry::Chunk { id, len } => {
                    recipe.chunk(id, *len);
                    distinct.insert(*id);
                }
                Entry::Inline(b) => recipe.inline(b),
            }
        }
        for id in distinct {
            let mut c = tx.chunk(&id).unwrap().unwrap();
            c.refs += 1;
            tx.put_chunk(&id, &c).unwrap();
        }
        tx.put_blob(&liar, &rec, &recipe.finish(), &[]).unwrap();
        tx.commit().unwrap();
        let report = f.store.verify(Verify::Full).unwrap();
        assert_eq!(
            report.defects,
            vec![Defect::DigestMismatch {
                digest: liar.clone(),
                actual: d.clone()
            }]
        );
        assert!(f.store.verify(Verify::Quick).unwrap().is_clean());
        assert_eq!(read(&f.store, d).unwrap(), *data);
    }

    #[test]
    fn with_dangling_link() {
        let f = fixture();
        let gone = Digest::sha256(b"never stored");
        let mut tx = f.store.inner.index.write().unwrap();
        tx.add_link("app", &gone, LinkKind::BLOB, 0).unwrap();
        tx.commit().unwrap();
        let report = f.store.verify(Verify::Quick).unwrap();
        assert_eq!(
            report.defects,
            vec![Defect::LinkDangling {
                repo: "app".into(),
                digest: gone
            }]
        );
        assert!(report.defects[0].to_string().contains("app"));
    }
}
