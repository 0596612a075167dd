//! `airlock import`: volumes in any order, one at a time, straight into the store.
//!
//! Before anything is written, every blob description of the index is checked (`check`): a
//! segment that would expand past the store's limits, or any length that does not hold, stops
//! the import naming the volume file, its number and the index's offset.
//!
//! Each frame of a volume is read, checked whole (checksum, every chunk's BLAKE3) and handed to
//! the store, which keeps it as it is when it lacks all its chunks; nothing is staged or
//! concatenated on disk. A damaged frame is named (volume, offset, what) and skipped: the rest
//! still imports. Every frame of every volume given is checked, and a volume whose own index
//! copy is unusable is named, even when the store already holds all they carry: whether a disc
//! is reported damaged never depends on what the store got first (from this bundle, another
//! one given alongside, or an earlier run). Bundles are imported in the order their first
//! volume was given.
//!
//! As soon as every chunk a missing blob needs is in the store, the blob is rebuilt from its
//! chunks on another core and its digest checked before its recipe is committed (`checks`),
//! while the next frames are read; once every blob is in, all links and tags of the bundle move
//! in one transaction. What is done is what the store holds: a re-run after a kill or with the
//! missing volumes stores no chunk twice (a frame whose chunks are all stored is checked, not
//! stored), asks only for volumes holding chunks still lacking, and commits only blobs not yet
//! committed. A copy of the index is kept under the store's `imports/<bundle id>/`, so volumes
//! whose own copy is damaged can still be read.

mod check;
mod checks;
mod given;
mod rebuild;
mod repair;
mod report;
mod trust;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use airlock_store::{AppAction, ChunkId, Digest, Frame, RepoChange, Store};
use rayon::prelude::*;

use self::check::{IndexAt, check_descriptions, description};
pub use self::report::{
    BundleOutcome, Damage, ImportOptions, ImportReport, ParityProblem, Prompt, Rebuilt, ref_text,
};
pub use self::trust::{Signer, Trust};
use self::{
    checks::{Checks, Shared},
    given::Given,
    rebuild::Rebuilder,
    repair::replace_unreadable,
    trust::{IndexBytes, Verdict},
};
use crate::{
    error::{Error, Result},
    index::{Base, BundleId, BundleIndex},
    parity::ParityReader,
    progress::Progress,
    state::{self, ImportState},
    volume::VolumeReader,
};

/// Imports the volumes found at `paths`: volume files, directories of them, and whatever else
/// lies beside them on a disc. A bundle's index file is used when no volume of its bundle
/// carries an intact copy; files that are no volume are named (a note each, and
/// [`ImportReport::ignored`]) and left alone. A path that is, or is named as, a volume but
/// cannot be read is [`ImportReport::unreadable`]. Nothing to import at all is an error.
pub fn import(
    store: &Store,
    paths: &[PathBuf],
    opts: &ImportOptions<'_>,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    // GC waits for this import: its chunks are stored before the blobs that use them.
    let _hold = store.hold_chunks();
    let mut report = ImportReport::default();
    // In the order given, not by (random) bundle id: bundles may share chunks, and the one
    // imported first is the one whose volumes provide them.
    let mut groups: Vec<(BundleId, Vec<VolumeReader>)> = Vec::new();
    let mut given = Given::sort(paths);
    let signatures = std::mem::take(&mut given.signatures);
    for path in given.volumes {
        match VolumeReader::open(&path) {
            Ok(v) => {
                let id = v.header().bundle_id;
                match groups.iter_mut().find(|(g, _)| *g == id) {
                    Some((_, volumes)) => volumes.push(v),
                    None => groups.push((id, vec![v])),
                }
            }
            Err(e) => {
                progress.note(&format!("skipping {}: {e}", path.display()));
                report.unreadable.push((path, e.to_string()));
            }
        }
    }
    for (path, why) in given.ignored {
        progress.note(&format!("ignoring {}: {why}", path.display()));
        report.ignored.push((path, why));
    }
    let mut parity: HashMap<BundleId, Vec<ParityReader>> = HashMap::new();
    for path in given.parity {
        match ParityReader::open(&path) {
            Ok(r) if groups.iter().any(|(id, _)| *id == r.header().bundle_id) => {
                parity.entry(r.header().bundle_id).or_default().push(r);
            }
            Ok(r) => {
                let why = format!(
                    "a parity volume of bundle {}, none of whose volumes were given; not used",
                    r.header().bundle_id
                );
                progress.note(&format!("ignoring {}: {why}", path.display()));
                report.ignored.push((path, why));
            }
            Err(e) => {
                let why = format!("a parity volume that fails its checks, not used: {e}");
                progress.note(&format!("ignoring {}: {why}", path.display()));
                report.ignored.push((path, why));
            }
        }
    }
    let mut fallbacks: HashMap<BundleId, Fallback> = HashMap::new();
    for file in given.indexes {
        let (why, used) = file.role(&groups);
        progress.note(&format!("{}: {why}", file.path.display()));
        if used {
            fallbacks.insert(file.index.bundle_id, (file.path, file.index, file.check));
        } else {
            report.ignored.push((file.path, why));
        }
    }
    if groups.is_empty() && report.unreadable.is_empty() {
        return Err(match paths {
            [dir] if dir.is_dir() => Error::NoVolumes { path: dir.clone() },
            _ => Error::NothingToImport { given: paths.len() },
        });
    }
    if groups.len() > 1 {
        let names: Vec<String> = groups
            .iter()
            .map(|(id, vols)| {
                let name = vols.iter().find_map(|v| v.index()).map_or_else(
                    || format!("bundle {id}"),
                    |ix| format!("{} ({id})", ix.name),
                );
                let numbers: Vec<String> =
                    vols.iter().map(|v| v.header().number.to_string()).collect();
                format!("{name}: volume(s) {}", numbers.join(", "))
            })
            .collect();
        progress.note(&format!(
            "volumes of {} different bundles were given; each is imported on its own: {}",
            groups.len(),
            names.join("; ")
        ));
    }
    // Every bundle's index descriptions and signature are checked before anything is written.
    let mut prepared = Vec::with_capacity(groups.len());
    for (id, volumes) in groups {
        let fallback = fallbacks.remove(&id);
        let parity = parity.remove(&id).unwrap_or_default();
        prepared.push((
            prepare(store, id, volumes, fallback, &signatures, opts)?,
            parity,
        ));
    }
    for (p, parity) in prepared {
        let outcome = Importer::new(store, p, parity, opts, progress)?.run()?;
        report.bundles.push(outcome);
    }
    replace_unreadable(&mut report, progress);
    Ok(report)
}

/// A bundle index file given beside the volumes: its path, index and BLAKE3.
type Fallback = (PathBuf, BundleIndex, [u8; 32]);

/// One bundle, checked and ready to import: nothing written yet.
struct Prepared {
    dir: PathBuf,
    volumes: Vec<VolumeReader>,
    index: BundleIndex,
    /// The index bytes to keep in the import's state (none when read from that state).
    copy: Option<IndexBytes>,
    verdict: Verdict,
}

/// Chooses the index of bundle `id` (a volume's copy, else the index file given, else the copy
/// an earlier run saved), checks its blob descriptions and its signature; writes nothing.
fn prepare(
    store: &Store,
    id: BundleId,
    volumes: Vec<VolumeReader>,
    fallback: Option<Fallback>,
    signatures: &[(PathBuf, Vec<u8>)],
    opts: &ImportOptions<'_>,
) -> Result<Prepared> {
    let dir = store.root().join("imports").join(id.to_string());
    let own = volumes
        .iter()
        .find_map(|v| Some((v, v.index()?, IndexBytes::of_volume(v)?)));
    let (index, bytes, copy) = match (own, fallback) {
        (Some((v, ix, bytes)), _) => {
            check_descriptions(ix, IndexAt::Volume(v))?;
            (ix.clone(), bytes, true)
        }
        (None, Some((path, ix, check))) => {
            check_descriptions(&ix, IndexAt::File(&path))?;
            let label = path.display().to_string();
            (ix, IndexBytes::of_file(&path, Some(check), label)?, true)
        }
        (None, None) => {
            let ix = state::read_saved(&dir, id, || index_problems(&volumes))?;
            let saved = state::saved_index_path(&dir);
            check_descriptions(&ix, IndexAt::Saved(&saved))?;
            let label = format!("{} (saved by an earlier run)", saved.display());
            (ix, IndexBytes::of_file(&saved, None, label)?, false)
        }
    };
    let saved_signature = state::saved_signature(&dir);
    let verdict = trust::check(
        &index,
        &bytes,
        &volumes,
        signatures,
        saved_signature,
        &opts.trust,
    )?;
    Ok(Prepared {
        dir,
        volumes,
        index,
        copy: copy.then_some(bytes),
        verdict,
    })
}

/// Why each volume's index copy is unusable, by volume, for an import that found none.
fn index_problems(volumes: &[VolumeReader]) -> String {
    let problems: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let e = v.index_problem()?;
            Some(format!("volume {}: {e}", v.header().number))
        })
        .collect();
    problems.join("; ")
}

struct Importer<'a> {
    store: &'a Store,
    index: BundleIndex,
    state: ImportState,
    volumes: Vec<VolumeReader>,
    opts: &'a ImportOptions<'a>,
    progress: &'a dyn Progress,
    outcome: BundleOutcome,
    started: Instant,
    /// BLAKE3 of the signed index, when the bundle is signed by a trusted key: every volume
    /// must name it.
    signed_check: Option<[u8; 32]>,
    /// The parity volumes of the bundle, when given.
    rebuilder: Option<Rebuilder>,
    /// Volumes not given whose rebuild was tried since the last volume was admitted.
    rebuild_tried: BTreeSet<u32>,
    /// The data volumes admitted, by number.
    given_paths: BTreeMap<u32, PathBuf>,
    /// The index check the volumes' headers name (what parity volumes must cover).
    index_check: Option<[u8; 32]>,
}

impl<'a> Importer<'a> {
    fn new(
        store: &'a Store,
        p: Prepared,
        parity: Vec<ParityReader>,
        opts: &'a ImportOptions<'a>,
        progress: &'a dyn Progress,
    ) -> Result<Importer<'a>> {
        let copy = p.copy.as_ref().map(|b| (b.path.as_path(), b.offset, b.len));
        let state = ImportState::start(&p.dir, opts.dry_run, copy, p.verdict.signature.as_deref())?;
        let index = p.index;
        let outcome = BundleOutcome {
            bundle_id: index.bundle_id,
            name: index.name.clone(),
            volume_count: index.volume_count,
            complete: false,
            missing_volumes: Vec::new(),
            damaged: Vec::new(),
            affected: Vec::new(),
            rebuilt: Vec::new(),
            parity_volumes: Vec::new(),
            parity_problems: Vec::new(),
            parity_short: None,
            refs: index.refs.clone(),
            signer: p.verdict.signer.clone(),
            bytes_read: 0,
            new_chunks: 0,
            new_bytes: 0,
            new_blobs: 0,
            elapsed: Duration::ZERO,
        };
        // What parity volumes must cover: the signed index when signed, else the volumes' one.
        let index_check = p
            .verdict
            .signed_check
            .or_else(|| p.volumes.first().map(|v| v.header().index_check));
        let mut me = Importer {
            store,
            index,
            state,
            volumes: Vec::new(),
            opts,
            progress,
            outcome,
            started: Instant::now(),
            signed_check: p.verdict.signed_check,
            rebuilder: None,
            rebuild_tried: BTreeSet::new(),
            given_paths: BTreeMap::new(),
            index_check,
        };
        for v in p.volumes {
            me.admit(v);
        }
        me.add_parity(parity);
        Ok(me)
    }

    /// Keeps a volume of this bundle, refusing one whose header disagrees with the index.
    fn admit(&mut self, v: VolumeReader) {
        let h = v.header();
        let problem = if h.count != self.index.volume_count {
            Some(format!(
                "says the bundle has {} volumes, its index says {}",
                h.count, self.index.volume_count
            ))
        } else if h.number == 0 || h.number > self.index.volume_count {
            Some(format!("has number {} of {}", h.number, h.count))
        } else if self.signed_check.is_some_and(|c| c != h.index_check) {
            Some(
                "names another bundle index in its header than the signed one: not a volume \
                 of this bundle, or altered; not read"
                    .to_owned(),
            )
        } else {
            None
        };
        match problem {
            Some(what) => self.outcome.damaged.push(Damage::at(&v, 0, what)),
            None => {
                if !self.volumes.iter().any(|o| o.header().number == h.number) {
                    if let Some(r) = self.rebuilder.as_mut() {
                        r.add_data(h.number, v.path());
                    }
                    self.given_paths
                        .entry(h.number)
                        .or_insert_with(|| v.path().to_owned());
                    self.rebuild_tried.clear();
                    self.volumes.push(v);
                }
            }
        }
    }

    fn run(mut self) -> Result<BundleOutcome> {
        self.check_base()?;
        if self.opts.dry_run {
            self.volumes.sort_by_key(|v| v.header().number);
            for v in std::mem::take(&mut self.volumes) {
                self.check_volume(Some(&v), v.header().number);
            }
            // Each volume not given is checked as it would be rebuilt, whatever the store holds.
            let all: Vec<u32> = (1..=self.index.volume_count).collect();
            for n in self.rebuildable(&all) {
                self.check_volume(None, n);
            }
            self.finish_parity_report();
            let mut missing: BTreeSet<u32> = self.missing_volumes()?.into_iter().collect();
            missing.extend(self.outcome.damaged.iter().map(|d| d.volume));
            self.outcome.missing_volumes = missing.into_iter().collect();
            self.outcome.affected = self.affected(&self.outcome.missing_volumes);
            self.outcome.elapsed = self.started.elapsed();
            return Ok(self.outcome);
        }
        let shared = Shared::default();
        let (store, progress) = (self.store, self.progress);
        let complete = std::thread::scope(|s| -> Result<bool> {
            let needed = self.needed()?;
            let parts = (store, &self.index, progress);
            let mut checks = Checks::start(s, &shared, parts, &needed)?;
            let read = self.read_all(&mut checks);
            // The checks queued so far run to their end whatever happened: a commit is never
            // cut short, and a failed check is the import's error.
            let checked = checks.finish(progress, "verifying blobs");
            self.outcome.new_blobs += checked?;
            read
        })?;
        self.finish_parity_report();
        if complete {
            self.finish()?;
        }
        self.outcome.elapsed = self.started.elapsed();
        Ok(self.outcome)
    }

    /// Reads the volumes given, then asks for missing ones while a prompt can; returns whether
    /// every volume needed was read.
    fn read_all(&mut self, checks: &mut Checks<'_>) -> Result<bool> {
        loop {
            self.volumes.sort_by_key(|v| v.header().number);
            let pending: Vec<VolumeReader> = std::mem::take(&mut self.volumes);
            for v in pending {
                self.read_volume(Some(&v), v.header().number, checks)?;
                if checks.failed() {
                    return Ok(false);
                }
            }
            let missing = self.missing_volumes()?;
            if missing.is_empty() {
                return Ok(true);
            }
            let rebuildable = self.rebuildable(&missing);
            if !rebuildable.is_empty() {
                for n in rebuildable {
                    self.read_volume(None, n, checks)?;
                    if checks.failed() {
                        return Ok(false);
                    }
                }
                continue;
            }
            let Some(prompt) = self.opts.prompt else {
                self.outcome.affected = self.affected(&missing);
                self.outcome.missing_volumes = missing;
                return Ok(false);
            };
            let Some(next) =
                prompt.next_volume(&self.index.name, &missing, self.index.volume_count)
            else {
                self.outcome.affected = self.affected(&missing);
                self.outcome.missing_volumes = missing;
                return Ok(false);
            };
            let given = Given::sort(&[next]);
            for (path, why) in &given.ignored {
                self.progress
                    .note(&format!("ignoring {}: {why}", path.display()));
            }
            let mut parity = Vec::new();
            for path in given.parity {
                match ParityReader::open(&path) {
                    Ok(r) if r.header().bundle_id == self.index.bundle_id => parity.push(r),
                    Ok(r) => self.progress.note(&format!(
                        "{} is a parity volume of another bundle ({}), not {}",
                        path.display(),
                        r.header().bundle_id,
                        self.index.name
                    )),
                    Err(e) => {
                        let what = format!("fails its checks, not used: {e}");
                        self.progress.note(&format!("{}: {what}", path.display()));
                        self.outcome
                            .parity_problems
                            .push(ParityProblem { path, what });
                    }
                }
            }
            self.add_parity(parity);
            for path in given.volumes {
                match VolumeReader::open(&path) {
                    Ok(v) if v.header().bundle_id == self.index.bundle_id => self.admit(v),
                    Ok(v) => self.progress.note(&format!(
                        "{} belongs to another bundle ({}), not {}",
                        path.display(),
                        v.header().bundle_id,
                        self.index.name
                    )),
                    Err(e) => self.progress.note(&format!("{}: {e}", path.display())),
                }
            }
        }
    }

    /// Blobs of the bundle the store lacks, with the chunks they need.
    fn needed(&self) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for (i, b) in self.index.blobs.iter().enumerate() {
            if !self
                .store
                .has_blob(&b.digest)
                .map_err(st("looking up blobs"))?
            {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Chunks needed blobs lack in the store.
    fn lacking(&self) -> Result<HashSet<ChunkId>> {
        let mut wanted: Vec<ChunkId> = Vec::new();
        let mut seen = HashSet::new();
        for i in self.needed()? {
            for c in &self.index.blobs[i].chunks {
                if seen.insert(*c) {
                    wanted.push(*c);
                }
            }
        }
        let missing = self
            .store
            .missing_chunks(&wanted)
            .map_err(st("looking up chunks"))?;
        Ok(missing.into_iter().collect())
    }

    /// A delta needs what its base carried: refuse early, naming the base, when the store
    /// lacks chunks the bundle does not ship.
    fn check_base(&self) -> Result<()> {
        let lacking = self.lacking()?;
        let shipped = self.index.locate_chunks();
        let absent: Vec<&ChunkId> = lacking
            .iter()
            .filter(|c| !shipped.contains_key(*c))
            .collect();
        if absent.is_empty() {
            return Ok(());
        }
        let absent: HashSet<&ChunkId> = absent.into_iter().collect();
        let blobs: BTreeSet<Digest> = self
            .index
            .blobs
            .iter()
            .filter(|b| b.chunks.iter().any(|c| absent.contains(c)))
            .map(|b| b.digest.clone())
            .collect();
        let images = self.refs_reaching(&blobs);
        let base = match &self.index.base {
            Some(Base::Since { bundle_id, name }) => {
                format!("bundle {name} ({bundle_id}); import it first")
            }
            Some(Base::Inventory { inventory_id, .. }) => format!(
                "the store inventory {inventory_id} it was made for; this store lacks part of it"
            ),
            None => "nothing (a full bundle whose index lists chunks it does not ship)".into(),
        };
        Err(Error::BaseMissing {
            bundle: self.index.name.clone(),
            chunks: absent.len() as u64,
            blobs: blobs.len() as u64,
            images: images.join(", "),
            base,
        })
    }

    /// Reads volume `number`: the volume given, or (`None`) rebuilt from parity.
    fn read_volume(
        &mut self,
        v: Option<&VolumeReader>,
        number: u32,
        checks: &mut Checks<'_>,
    ) -> Result<()> {
        let Some(entry) = self
            .index
            .volumes
            .iter()
            .find(|e| e.number == number)
            .cloned()
        else {
            return Err(Error::IndexCorrupt {
                what: format!("no frame table for volume {number}"),
            });
        };
        let path = self.volume_path(v, number);
        let total: u64 = entry.frames.iter().map(|f| u64::from(f.len)).sum();
        let label = if v.is_some() {
            "volume"
        } else {
            "rebuilding volume"
        };
        self.progress.begin(
            &format!("{label} {number}/{}", self.index.volume_count),
            total,
        );
        if let Err(what) = self.check_source(v, number) {
            self.outcome
                .damaged
                .push(Damage::new(&path, number, 0, what));
            self.progress.advance(total);
            return Ok(());
        }
        let mut had = 0usize;
        for f in &entry.frames {
            // Read and checked even when its chunks are all stored (from another volume, bundle
            // or run): a damaged frame is named whatever the store got first.
            let decoded = match self.fetch(v, number, f) {
                Ok(decoded) => decoded,
                Err(what) => {
                    self.outcome
                        .damaged
                        .push(Damage::new(&path, number, f.offset, what));
                    self.progress.advance(u64::from(f.len));
                    continue;
                }
            };
            self.outcome.bytes_read += u64::from(f.len);
            let have_all = self
                .store
                .missing_chunks(&f.chunks)
                .map_err(st("looking up chunks"))?
                .is_empty();
            if have_all {
                had += 1;
            } else {
                let added = self
                    .store
                    .insert_frame(decoded)
                    .map_err(st("storing chunks"))?;
                self.outcome.new_chunks += added.new_chunks;
                self.outcome.new_bytes += added.new_bytes;
                checks.stored(&self.index, &f.chunks);
                if checks.failed() {
                    return Ok(());
                }
            }
            self.progress.advance(u64::from(f.len));
        }
        if had == entry.frames.len() && v.is_some() {
            self.progress.note(&format!(
                "volume {number}: everything in it is already in the store"
            ));
        }
        self.progress.volume(&path, number, self.index.volume_count);
        Ok(())
    }

    /// Reads and checks every frame of a volume without storing anything (a dry run: each
    /// volume can be checked alone, e.g. right after burning it).
    fn check_volume(&mut self, v: Option<&VolumeReader>, number: u32) {
        let Some(entry) = self
            .index
            .volumes
            .iter()
            .find(|e| e.number == number)
            .cloned()
        else {
            return;
        };
        let path = self.volume_path(v, number);
        let total: u64 = entry.frames.iter().map(|f| u64::from(f.len)).sum();
        self.progress.begin(
            &format!("check {number}/{}", self.index.volume_count),
            total,
        );
        if let Err(what) = self.check_source(v, number) {
            self.outcome
                .damaged
                .push(Damage::new(&path, number, 0, what));
            return;
        }
        for f in &entry.frames {
            match self.fetch(v, number, f) {
                Ok(_) => self.outcome.bytes_read += u64::from(f.len),
                Err(what) => self
                    .outcome
                    .damaged
                    .push(Damage::new(&path, number, f.offset, what)),
            }
            self.progress.advance(u64::from(f.len));
        }
        self.progress.volume(&path, number, self.index.volume_count);
    }

    /// Volumes holding chunks still lacking.
    fn missing_volumes(&self) -> Result<Vec<u32>> {
        let lacking = self.lacking()?;
        Ok(self.index.volumes_holding(&lacking).into_iter().collect())
    }

    /// References whose blobs need chunks from `volumes`.
    fn affected(&self, volumes: &[u32]) -> Vec<String> {
        let wanted: BTreeSet<u32> = volumes.iter().copied().collect();
        let blobs: BTreeSet<Digest> = self
            .index
            .volumes_by_blob()
            .into_iter()
            .filter(|(_, v)| !v.is_disjoint(&wanted))
            .map(|(d, _)| d)
            .collect();
        self.refs_reaching(&blobs)
    }

    /// References (as text) that reach any of `blobs`.
    fn refs_reaching(&self, blobs: &BTreeSet<Digest>) -> Vec<String> {
        let by_digest: HashMap<(&str, &Digest), usize> = self
            .index
            .manifests
            .iter()
            .enumerate()
            .map(|(i, m)| ((m.repo.as_str(), &m.digest), i))
            .collect();
        let mut out = Vec::new();
        for r in &self.index.refs {
            let mut stack = vec![&r.digest];
            let mut seen = HashSet::new();
            let mut hit = false;
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                hit |= blobs.contains(d);
                if let Some(&i) = by_digest.get(&(r.repo.as_str(), d)) {
                    stack.extend(self.index.manifests[i].children.iter());
                }
                for m in &self.index.manifests {
                    if m.repo == r.repo && m.subject.as_ref().is_some_and(|(s, _)| s == d) {
                        stack.push(&m.digest);
                    }
                }
            }
            if hit {
                out.push(ref_text(r));
            }
        }
        out
    }

    /// Commits every blob not committed yet (each verified against its digest; the checks
    /// overlapped with reading leave none but those a concurrent change made lack a chunk
    /// then), then moves links and tags together.
    fn finish(&mut self) -> Result<()> {
        let needed = self.needed()?;
        let total: u64 = needed.iter().map(|&i| self.index.blobs[i].size).sum();
        self.progress.begin("verifying blobs", total);
        let results: Vec<Result<bool>> = needed
            .par_iter()
            .map(|&i| {
                let blob = &self.index.blobs[i];
                let desc = description(blob).map_err(|e| Error::BlobRejected {
                    digest: blob.digest.clone(),
                    source: e,
                })?;
                let out = self
                    .store
                    .put_described(&desc)
                    .map_err(|e| Error::BlobRejected {
                        digest: blob.digest.clone(),
                        source: e,
                    })?;
                self.progress.advance(blob.size);
                Ok(!out.existed)
            })
            .collect();
        for r in results {
            if r? {
                self.outcome.new_blobs += 1;
            }
        }
        let mut changes = repo_changes(&self.index);
        let apps = app_changes(&self.index);
        changes.extend(apps.iter().cloned());
        self.store
            .apply_repo_changes(&changes)
            .map_err(st("moving the bundle's tags"))?;
        for change in &apps {
            if let RepoChange::AppEvent { repo, version, .. } = change {
                self.progress.note(&format!(
                    "application {}: version {version} is current",
                    repo.strip_prefix(APP_REPO_PREFIX).unwrap_or(repo)
                ));
            }
        }
        self.outcome.complete = true;
        self.state.remove();
        Ok(())
    }
}

/// Reads one frame and checks it is whole and holds the chunks the index says.
fn read_frame(
    v: &VolumeReader,
    offset: u64,
    len: u32,
    chunks: &[ChunkId],
) -> std::result::Result<airlock_store::DecodedChunks, String> {
    let bytes = v.read_frame(offset, len).map_err(|e| match e {
        Error::FrameCorrupt { what, .. } => what,
        other => other.to_string(),
    })?;
    decode_frame(bytes, chunks)
}

/// Checks a frame's bytes whole and that it holds the chunks the index says.
fn decode_frame(
    bytes: Vec<u8>,
    chunks: &[ChunkId],
) -> std::result::Result<airlock_store::DecodedChunks, String> {
    let decoded = Frame::decode(bytes).map_err(|e| e.to_string())?;
    let ids: Vec<ChunkId> = decoded.chunks().map(|(id, _)| id).collect();
    if ids != chunks {
        return Err("the frame holds other chunks than the bundle index lists".into());
    }
    Ok(decoded)
}

/// Links of every manifest and blob, then the tags: one all-or-nothing list.
pub(crate) fn repo_changes(index: &BundleIndex) -> Vec<RepoChange> {
    let manifests: HashSet<&Digest> = index.manifests.iter().map(|m| &m.digest).collect();
    let mut changes = Vec::new();
    for m in &index.manifests {
        for c in &m.children {
            if !manifests.contains(c) && !m.absent.contains(c) {
                changes.push(RepoChange::LinkBlob {
                    repo: m.repo.clone(),
                    digest: c.clone(),
                });
            }
        }
        changes.push(RepoChange::LinkManifest {
            repo: m.repo.clone(),
            digest: m.digest.clone(),
            children: m.children.clone(),
            subject: m.subject.clone(),
            media_type: m.media_type.clone(),
        });
        if !m.absent.is_empty() {
            changes.push(RepoChange::MarkAbsent {
                digest: m.digest.clone(),
                children: m.absent.clone(),
            });
        }
    }
    for r in &index.refs {
        if let Some(tag) = &r.tag {
            changes.push(RepoChange::SetTag {
                repo: r.repo.clone(),
                tag: tag.clone(),
                digest: r.digest.clone(),
            });
        }
    }
    changes
}

/// Repositories of application versions (`airlock add -f app.yaml`) are named so.
const APP_REPO_PREFIX: &str = "airlock/apps/";

/// An application version the bundle carries becomes current, in the same transaction as the
/// tags (see `airlock apps`): one event per version tag of `airlock/apps/NAME`, recorded as
/// imported by the bundle (its id and name). Of several versions of one application, the last
/// listed ends current.
pub(crate) fn app_changes(index: &BundleIndex) -> Vec<RepoChange> {
    let by = format!("bundle {} ({})", index.bundle_id, index.name);
    index
        .refs
        .iter()
        .filter(|r| r.repo.starts_with(APP_REPO_PREFIX))
        .filter_map(|r| {
            r.tag.as_ref().map(|tag| RepoChange::AppEvent {
                repo: r.repo.clone(),
                version: tag.clone(),
                action: AppAction::Import,
                by: by.clone(),
            })
        })
        .collect()
}

fn st(context: &'static str) -> impl Fn(airlock_store::Error) -> Error {
    move |e| Error::store(context.to_owned(), e)
}
