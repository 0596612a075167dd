//! `airlock export`: plan what a bundle carries, then write its volumes.
//!
//! The plan walks the references (see `content`), describes every blob, and keeps the chunks
//! the site lacks: all of them for a full bundle, those missing from the earlier bundle's index
//! (`--since`) or the site's inventory (`--have`) for a delta, so a changed layer ships only
//! its changed parts. Writing reads those chunks in order, compresses frames of them in
//! parallel at the bundle's level, and fills volumes one after the other, never past their
//! size; each volume ends with the whole bundle index. Files are written as `.partial` and
//! renamed only when complete, so a failed export leaves no volume that looks whole.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
};

use airlock_oci::{ImageRef, Platform};
use airlock_store::{ChunkId, Digest, Frame, Store};
use rayon::prelude::*;

use crate::{
    content::{self, resolve},
    error::{Error, Result, io_error},
    index::{Base, BlobEntry, BundleId, BundleIndex, FrameEntry, RefEntry, VolumeEntry},
    inventory::Inventory,
    names::{index_file_name, parity_file_name, signature_file_name, volume_file_name},
    parity::{MAX_PARITY_VOLUMES, parity_reserve, stripe_bytes_for, write_parity},
    progress::Progress,
    sign::{KeyId, MAX_SIGNATURE_BYTES, SigningKey},
    starter::{self, PROGRAM_FILE, Program, README_FILE, SUMS_FILE, SUMS_SIGNATURE_FILE},
    volume::{PendingVolume, VOLUME_HEADER_LEN, VOLUME_TRAILER_LEN, VolumeWriter},
    wire::write_atomically,
};

/// Raw bytes of chunks per frame, at most (smaller when volumes are tiny).
pub const FRAME_RAW_BYTES: usize = 4 * 1024 * 1024;
/// Default zstd level of bundle frames: the vendor compresses once, sites decompress fast.
pub const DEFAULT_LEVEL: i32 = 19;

/// What the site already has, for a delta.
#[derive(Debug, Default)]
pub enum Have {
    /// Nothing: a full bundle.
    #[default]
    Nothing,
    /// Everything an earlier bundle carried (`--since INDEX`).
    Bundle(Box<BundleIndex>),
    /// What the site's store holds (`--have INVENTORY`).
    Inventory(Box<Inventory>),
}

impl Have {
    fn base(&self) -> Option<Base> {
        match self {
            Have::Nothing => None,
            Have::Bundle(ix) => Some(Base::Since {
                bundle_id: ix.bundle_id,
                name: ix.name.clone(),
            }),
            Have::Inventory(inv) => Some(Base::Inventory {
                inventory_id: inv.id(),
                created: inv.created(),
            }),
        }
    }
}

/// A set view of [`Have`] for quick lookups.
struct HaveSet<'a> {
    have: &'a Have,
    chunks: HashSet<ChunkId>,
    blobs: HashSet<Digest>,
}

impl<'a> HaveSet<'a> {
    fn new(have: &'a Have) -> HaveSet<'a> {
        let (mut chunks, mut blobs) = (HashSet::new(), HashSet::new());
        if let Have::Bundle(ix) = have {
            for b in &ix.blobs {
                blobs.insert(b.digest.clone());
                chunks.extend(b.chunks.iter().copied());
            }
        }
        HaveSet {
            have,
            chunks,
            blobs,
        }
    }

    fn has_blob(&self, d: &Digest) -> bool {
        match self.have {
            Have::Inventory(inv) => inv.has_blob(d),
            _ => self.blobs.contains(d),
        }
    }

    fn has_chunk(&self, id: &ChunkId) -> bool {
        match self.have {
            Have::Inventory(inv) => inv.has_chunk(id),
            _ => self.chunks.contains(id),
        }
    }
}

/// How to export.
#[derive(Debug)]
pub struct ExportOptions {
    /// The bundle's name: files are `NAME.NNN.airlock` and `NAME.index.airlock`.
    pub name: String,
    /// Directory the files go to (created if missing).
    pub out_dir: PathBuf,
    /// Bytes a volume may hold, at most.
    pub volume_size: u64,
    /// zstd level of the frames (1-22).
    pub level: i32,
    /// Whether referrers (signatures, SBOMs) of the images come along.
    pub referrers: bool,
    /// Only these platforms of multi-platform indexes travel (`--platform`; all when empty).
    pub platforms: Vec<Platform>,
    /// What the site has (deltas).
    pub have: Have,
    /// What wrote the bundle, e.g. "airlock 0.1.0".
    pub tool: String,
    /// Signs the bundle index with this key (`export --sign`): every volume carries the
    /// signature, and `NAME.index.airlock.minisig` is written beside the index file.
    pub signer: Option<SigningKey>,
    /// The airlock program to put beside volume 1 with `README.txt` and `SHA256SUMS`, its room
    /// taken from volume 1 (`None`: `export --no-binary`).
    pub program: Option<Program>,
    /// Parity volumes to add (`--parity N`), 0 for none: any N missing or damaged data
    /// volumes are then rebuilt on import.
    pub parity: u32,
}

impl ExportOptions {
    /// Bytes volume 1 gives up to the starter files.
    pub fn starter_reserve(&self) -> u64 {
        self.program.as_ref().map_or(0, Program::reserve)
    }
}

/// The parity volumes an export adds, and the room they take in each data volume.
#[derive(Debug, Clone, Copy)]
pub struct ParityPlan {
    /// Parity volumes.
    pub count: u32,
    /// Bytes of a stripe (a shard of each volume).
    pub stripe_bytes: u32,
    /// Bytes each data volume keeps free so that a parity volume fits the volume size.
    pub reserve: u64,
    /// Data volumes the reserve was computed for (more than the bundle should need).
    pub max_data_volumes: u32,
}

/// One exported reference in a plan.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The reference as resolved.
    pub reference: RefEntry,
    /// Blobs it reaches.
    pub blobs: usize,
    /// Bytes of those blobs.
    pub bytes: u64,
    /// Blobs it reaches that the site lacks (changed layers, configs, manifests), with sizes.
    pub new_blobs: Vec<(Digest, u64)>,
}

/// What an export will write, before it writes anything.
#[derive(Debug)]
pub struct ExportPlan {
    /// The index, without volumes yet.
    pub index: BundleIndex,
    /// Per exported reference.
    pub images: Vec<ImagePlan>,
    /// Chunks to ship, in order, with their lengths.
    pub chunks: Vec<(ChunkId, u32)>,
    /// Raw bytes of those chunks.
    pub chunk_bytes: u64,
    /// Bytes of every blob the bundle describes.
    pub blob_bytes: u64,
    /// Bytes of the blobs the site lacks.
    pub new_blob_bytes: u64,
    /// Volumes needed at most (chunks uncompressed), and at least one.
    pub max_volumes: u64,
    /// Bytes reserved in every volume for the header, index and trailer.
    pub overhead: u64,
    /// Bytes volume 1 leaves to the starter files on its disc (program, README.txt, SHA256SUMS).
    pub starter: u64,
    /// Single-platform images of a platform not asked for, which travel whole (`--platform`).
    pub warnings: Vec<String>,
    /// Parity volumes, when asked for.
    pub parity: Option<ParityPlan>,
}

/// Plans an export of `refs` (nothing is written).
pub fn plan_export(store: &Store, refs: &[ImageRef], opts: &ExportOptions) -> Result<ExportPlan> {
    crate::names::check_bundle_name(&opts.name)?;
    if refs.is_empty() {
        return Err(Error::Walk {
            what: "nothing to export: name at least one reference".into(),
        });
    }
    let resolved = refs
        .iter()
        .map(|r| resolve(store, r))
        .collect::<Result<Vec<_>>>()?;
    let content = content::collect(store, &resolved, opts.referrers, &opts.platforms)?;
    let have = HaveSet::new(&opts.have);
    let mut blobs = Vec::with_capacity(content.blobs.len());
    let mut chunks = Vec::new();
    let mut shipped = HashSet::new();
    let (mut chunk_bytes, mut blob_bytes, mut new_blob_bytes) = (0u64, 0u64, 0u64);
    let mut new_blob_set = BTreeSet::new();
    for digest in &content.blobs {
        let desc = store
            .describe_blob(digest)
            .map_err(|e| Error::store(format!("describing blob {digest}"), e))?;
        let list = desc
            .chunks()
            .map_err(|e| Error::store(format!("reading the recipe of blob {digest}"), e))?;
        blob_bytes += desc.size();
        if !have.has_blob(digest) {
            new_blob_bytes += desc.size();
            new_blob_set.insert(digest.clone());
            for &(id, len) in &list {
                if !have.has_chunk(&id) && shipped.insert(id) {
                    chunks.push((id, len));
                    chunk_bytes += u64::from(len);
                }
            }
        }
        blobs.push(BlobEntry {
            digest: digest.clone(),
            size: desc.size(),
            description: desc.to_bytes(),
            chunks: list.into_iter().map(|(id, _)| id).collect(),
        });
    }
    let size_of: HashMap<&Digest, u64> = blobs.iter().map(|b| (&b.digest, b.size)).collect();
    let images = resolved
        .iter()
        .zip(&content.reach)
        .map(|(r, reach)| {
            let sizes: Vec<(Digest, u64)> = reach
                .iter()
                .map(|d| (d.clone(), size_of.get(d).copied().unwrap_or(0)))
                .collect();
            ImagePlan {
                reference: r.clone(),
                blobs: sizes.len(),
                bytes: sizes.iter().map(|(_, s)| s).sum(),
                new_blobs: sizes
                    .into_iter()
                    .filter(|(d, _)| new_blob_set.contains(d))
                    .collect(),
            }
        })
        .collect();
    let index = BundleIndex {
        bundle_id: BundleId::random(),
        name: opts.name.clone(),
        created: now(),
        tool: opts.tool.clone(),
        base: opts.have.base(),
        refs: resolved,
        manifests: content.manifests,
        blobs,
        volume_count: 0,
        volumes: Vec::new(),
    };
    let signature_room = if opts.signer.is_some() {
        MAX_SIGNATURE_BYTES
    } else {
        0
    };
    let overhead = VOLUME_HEADER_LEN
        + VOLUME_TRAILER_LEN
        + signature_room
        + index.encoded_len_bound(chunks.len() as u64)?;
    let parity = plan_parity(opts, overhead, chunk_bytes, chunks.len() as u64)?;
    let data_size = opts.volume_size - parity.map_or(0, |p| p.reserve);
    let room = data_size.saturating_sub(overhead);
    if room < 64 * 1024 {
        return Err(Error::VolumeTooSmall {
            size: opts.volume_size,
            needed: opts.volume_size - room + 64 * 1024,
        });
    }
    let starter = opts.starter_reserve();
    if let Some(program) = &opts.program
        && room.saturating_sub(starter) < 64 * 1024
    {
        return Err(Error::NoRoomForProgram {
            size: opts.volume_size,
            program: program.path.clone(),
            needed: opts.volume_size - room + starter + 64 * 1024,
        });
    }
    // Volume 1 holds `room - starter` bytes of frames, every other volume `room`.
    let max_volumes = (chunk_bytes + starter).div_ceil(room).max(1);
    Ok(ExportPlan {
        index,
        images,
        chunks,
        chunk_bytes,
        blob_bytes,
        new_blob_bytes,
        max_volumes,
        overhead,
        starter,
        warnings: content.warnings,
        parity,
    })
}

/// Sizes the parity of an export: the stripe, and the room each data volume leaves so that a
/// parity volume over as many data volumes as the bundle can possibly need fits the volume size.
fn plan_parity(
    opts: &ExportOptions,
    overhead: u64,
    chunk_bytes: u64,
    chunks: u64,
) -> Result<Option<ParityPlan>> {
    let count = opts.parity;
    if count == 0 {
        return Ok(None);
    }
    if count > MAX_PARITY_VOLUMES {
        return Err(Error::ParityUnsupported {
            what: format!("{count} parity volumes asked for, {MAX_PARITY_VOLUMES} at most"),
        });
    }
    let size = opts.volume_size;
    // The data volumes the bundle should take: its chunks uncompressed, a frame's table, and a
    // quarter for volumes closed early. More only make the parity rows larger: the stripe
    // chosen once the volumes are written keeps the parity volumes within the size (checked).
    let bound = |room: u64| -> u64 {
        let stored = chunk_bytes + 40 * chunks + 1;
        stored.div_ceil(room.max(1)) * 5 / 4 + 2
    };
    let mut max_data = bound(size.saturating_sub(overhead)).min(u64::from(u32::MAX)) as u32;
    for _ in 0..16 {
        let reserve = parity_reserve(size, max_data, count);
        let room = size.saturating_sub(reserve).saturating_sub(overhead);
        if room < 64 * 1024 {
            return Err(Error::VolumeTooSmall {
                size,
                needed: overhead + reserve + 64 * 1024,
            });
        }
        let next = bound(room).min(u64::from(u32::MAX)) as u32;
        if next <= max_data {
            return Ok(Some(ParityPlan {
                count,
                stripe_bytes: stripe_bytes_for(size, max_data, count),
                reserve,
                max_data_volumes: max_data,
            }));
        }
        max_data = next;
    }
    Err(Error::ParityUnsupported {
        what: format!("no room for parity in volumes of {size} bytes"),
    })
}

/// What an export wrote.
#[derive(Debug)]
pub struct ExportReport {
    /// The volumes, in order.
    pub volumes: Vec<PathBuf>,
    /// The standalone index file (for a later `export --since`).
    pub index_file: PathBuf,
    /// The files beside volume 1 that start a site (empty with `--no-binary`).
    pub starter: Vec<PathBuf>,
    /// Bytes of all volumes.
    pub bytes: u64,
    /// Frames written.
    pub frames: u64,
    /// The bundle's id.
    pub bundle_id: BundleId,
    /// `NAME.index.airlock.minisig` and the key that signed, when signed.
    pub signature: Option<(PathBuf, KeyId)>,
    /// The parity volumes, in order (none without `--parity`).
    pub parity_volumes: Vec<PathBuf>,
    /// Bytes of all parity volumes.
    pub parity_bytes: u64,
}

/// Writes the volumes of a plan.
pub fn write_export(
    store: &Store,
    plan: ExportPlan,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    std::fs::create_dir_all(&opts.out_dir).map_err(io_error(&opts.out_dir))?;
    refuse_existing(&opts.out_dir, &opts.name, opts.program.is_some())?;
    let mut out = Volumes {
        dir: opts.out_dir.clone(),
        name: opts.name.clone(),
        id: plan.index.bundle_id,
        size: opts.volume_size - plan.parity.map_or(0, |p| p.reserve),
        reserve: plan.overhead,
        starter: plan.starter,
        written: Vec::new(),
        closed: Vec::new(),
        current: None,
        entries: Vec::new(),
        frames: 0,
        index_check: [0; 32],
    };
    let result = out.fill(store, &plan, opts.level, progress);
    let finished = result.and_then(|()| {
        out.finish(
            plan.index,
            opts.program.as_ref(),
            opts.signer.as_ref(),
            progress,
        )
    });
    let mut report = match finished {
        Ok(report) => report,
        Err(e) => {
            out.abandon();
            return Err(e);
        }
    };
    if let Some(p) = plan.parity {
        let check = out.index_check;
        let written = write_parity(
            &opts.out_dir,
            &opts.name,
            (report.bundle_id, check),
            &report.volumes,
            (p.count, p.stripe_bytes, opts.volume_size),
            progress,
        );
        match written {
            Ok(paths) => {
                for (i, path) in paths.iter().enumerate() {
                    report.parity_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    progress.note(&format!(
                        "parity volume {} of {}: {}",
                        i + 1,
                        p.count,
                        path.display()
                    ));
                }
                report.parity_volumes = paths;
            }
            Err(e) => {
                // No bundle that looks whole without the parity asked for.
                let signature = report.signature.as_ref().map(|(p, _)| p);
                let written = report.volumes.iter().chain(&report.starter);
                for path in written.chain([&report.index_file]).chain(signature) {
                    if let Err(e) = std::fs::remove_file(path) {
                        tracing::warn!("removing {}: {e}", path.display());
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(report)
}

fn refuse_existing(dir: &Path, name: &str, starter: bool) -> Result<()> {
    let mut files = vec![
        dir.join(volume_file_name(name, 1)),
        dir.join(index_file_name(name)),
        dir.join(signature_file_name(name)),
        dir.join(parity_file_name(name, 1)),
    ];
    if starter {
        files.extend(
            [PROGRAM_FILE, README_FILE, SUMS_FILE, SUMS_SIGNATURE_FILE].map(|f| dir.join(f)),
        );
    }
    for p in files {
        if p.exists() {
            return Err(Error::AlreadyExists { path: p });
        }
    }
    Ok(())
}

struct Volumes {
    dir: PathBuf,
    name: String,
    id: BundleId,
    size: u64,
    /// BLAKE3 of the final index bytes, once written.
    index_check: [u8; 32],
    reserve: u64,
    /// Bytes volume 1 leaves to the starter files.
    starter: u64,
    /// Starter files written so far (removed if the export fails).
    written: Vec<PathBuf>,
    /// Volumes whose frames are written, waiting for the final index.
    closed: Vec<PendingVolume>,
    /// The volume being filled.
    current: Option<VolumeWriter>,
    entries: Vec<VolumeEntry>,
    frames: u64,
}

impl Volumes {
    /// Reads, compresses and places every chunk of the plan.
    fn fill(
        &mut self,
        store: &Store,
        plan: &ExportPlan,
        level: i32,
        progress: &dyn Progress,
    ) -> Result<()> {
        progress.begin("export", plan.chunk_bytes);
        let frame_raw = usize::try_from((self.size - self.reserve) / 2)
            .unwrap_or(usize::MAX)
            .clamp(1, FRAME_RAW_BYTES);
        let batch_raw = frame_raw * rayon::current_num_threads().max(1) * 2;
        let mut start = 0;
        while start < plan.chunks.len() {
            // A batch of chunks: read in order, then compressed as frames in parallel.
            let mut end = start;
            let mut raw = 0usize;
            while end < plan.chunks.len() && (raw < batch_raw || end == start) {
                raw += plan.chunks[end].1 as usize;
                end += 1;
            }
            let ids: Vec<ChunkId> = plan.chunks[start..end].iter().map(|c| c.0).collect();
            let mut data: Vec<(ChunkId, Vec<u8>)> = Vec::with_capacity(ids.len());
            store
                .read_chunks(&ids, |id, bytes| {
                    data.push((*id, bytes.to_vec()));
                    Ok(())
                })
                .map_err(|e| Error::store("reading chunks to export".into(), e))?;
            let groups = group(&data, frame_raw);
            let frames: Vec<Result<Frame>> = groups
                .par_iter()
                .map(|g| compress(&data[g.clone()], level))
                .collect();
            for (g, frame) in groups.into_iter().zip(frames) {
                self.place(&data[g.clone()], frame?, level)?;
                progress.advance(data[g].iter().map(|(_, d)| d.len() as u64).sum());
            }
            start = end;
        }
        Ok(())
    }

    /// Appends a frame to the current volume, or to a new one when it does not fit; a frame
    /// too large for an empty volume is split in two and compressed again.
    fn place(&mut self, chunks: &[(ChunkId, Vec<u8>)], frame: Frame, level: i32) -> Result<()> {
        let len = frame.as_bytes().len() as u64;
        if self.current.as_ref().is_none_or(|w| w.room() < len) {
            let next = self.closed.len() + usize::from(self.current.is_some()) + 1;
            let empty_fits = self.capacity(next).saturating_sub(self.reserve) >= len;
            if !empty_fits {
                if chunks.len() < 2 {
                    return Err(Error::VolumeTooSmall {
                        size: self.size,
                        needed: self.reserve + len + (self.size - self.capacity(next)),
                    });
                }
                let (a, b) = chunks.split_at(chunks.len() / 2);
                self.place(a, compress(a, level)?, level)?;
                return self.place(b, compress(b, level)?, level);
            }
            self.open_next()?;
        }
        let Some(w) = self.current.as_mut() else {
            return Err(Error::Walk {
                what: "no volume open".into(),
            });
        };
        let offset = w.append_frame(frame.as_bytes())?;
        self.frames += 1;
        if let Some(e) = self.entries.last_mut() {
            e.frames.push(FrameEntry {
                offset,
                len: len as u32,
                chunks: frame.chunks().map(|(id, _)| id).collect(),
            });
        }
        Ok(())
    }

    fn open_next(&mut self) -> Result<()> {
        if let Some(done) = self.current.take() {
            self.closed.push(done.close_frames()?);
        }
        let number = self.closed.len() as u32 + 1;
        let capacity = self.capacity(number as usize);
        let mut w = VolumeWriter::create(&self.dir, &self.name, number, self.id, capacity)?;
        w.reserve_index(self.reserve - VOLUME_HEADER_LEN - VOLUME_TRAILER_LEN);
        self.current = Some(w);
        self.entries.push(VolumeEntry {
            number,
            frames: Vec::new(),
        });
        Ok(())
    }

    /// Bytes volume `number` may hold: volume 1 leaves room for the starter files.
    fn capacity(&self, number: usize) -> u64 {
        if number == 1 {
            self.size - self.starter
        } else {
            self.size
        }
    }

    /// Completes every volume with the final index (and its signature), writes the starter
    /// files beside volume 1 and the standalone index file.
    fn finish(
        &mut self,
        mut index: BundleIndex,
        program: Option<&Program>,
        signer: Option<&SigningKey>,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        if self.current.is_none() {
            // A bundle whose chunks the site has all: one volume with only the index.
            self.open_next()?;
        }
        if let Some(last) = self.current.take() {
            self.closed.push(last.close_frames()?);
        }
        index.volume_count = self.closed.len() as u32;
        index.volumes = std::mem::take(&mut self.entries);
        let bytes = index.encode()?;
        // The program and README.txt first: a failure before the volumes are whole removes them.
        let mut sums = Vec::new();
        if let Some(program) = program {
            sums = starter::write_program_and_readme(&self.dir, program, &index, signer)?;
            self.written.extend(sums.iter().map(|(p, _)| p.clone()));
        }
        let index_name = index_file_name(&self.name);
        let signature = match signer {
            Some(key) => {
                let comment = format!(
                    "timestamp:{}\tfile:{index_name}\tairlock bundle {} ({})",
                    now(),
                    self.name,
                    index.bundle_id
                );
                key.sign(&bytes, &comment)?
            }
            None => Vec::new(),
        };
        self.index_check = crate::codec::index_check(&bytes);
        let mut volumes = Vec::new();
        let mut total = 0;
        for w in self.closed.drain(..) {
            let path = w.finish_signed(index.volume_count, &bytes, &signature)?;
            total += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            progress.volume(&path, volumes.len() as u32 + 1, index.volume_count);
            volumes.push(path);
        }
        let mut starter = Vec::new();
        if program.is_some() {
            let sums_files = starter::write_sums(&self.dir, &self.name, sums, signer, progress)?;
            starter = std::mem::take(&mut self.written);
            starter.extend(sums_files);
        }
        let index_file = self.dir.join(index_file_name(&self.name));
        index.write_file(&index_file)?;
        // The very bytes every volume carries (and the signature covers).
        let index_file = self.dir.join(index_name);
        write_atomically(&index_file, &bytes)?;
        let signature = match signer {
            Some(key) => {
                let path = self.dir.join(signature_file_name(&self.name));
                write_atomically(&path, &signature)?;
                Some((path, key.key_id()))
            }
            None => None,
        };
        Ok(ExportReport {
            volumes,
            index_file,
            starter,
            bytes: total,
            frames: self.frames,
            bundle_id: index.bundle_id,
            signature,
            parity_volumes: Vec::new(),
            parity_bytes: 0,
        })
    }

    /// Removes the partial files of a failed export.
    fn abandon(&mut self) {
        for p in self.written.drain(..) {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!("removing {}: {e}", p.display());
            }
        }
        if let Some(w) = self.current.take() {
            let path = w.path().to_owned();
            if let Err(e) = w.abandon() {
                tracing::warn!("removing {}: {e}", path.display());
            }
        }
        for w in self.closed.drain(..) {
            let path = w.path().to_owned();
            if let Err(e) = w.abandon() {
                tracing::warn!("removing {}: {e}", path.display());
            }
        }
    }
}

/// Splits chunks into consecutive groups of about `frame_raw` raw bytes.
fn group(data: &[(ChunkId, Vec<u8>)], frame_raw: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut raw) = (0, 0);
    for (i, (_, d)) in data.iter().enumerate() {
        if raw > 0 && raw + d.len() > frame_raw {
            out.push(start..i);
            start = i;
            raw = 0;
        }
        raw += d.len();
    }
    if start < data.len() {
        out.push(start..data.len());
    }
    out
}

fn compress(chunks: &[(ChunkId, Vec<u8>)], level: i32) -> Result<Frame> {
    let refs: Vec<(ChunkId, &[u8])> = chunks.iter().map(|(i, d)| (*i, &d[..])).collect();
    Frame::compress(&refs, level).map_err(|e| Error::store("compressing a frame".into(), e))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
