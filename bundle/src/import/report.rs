//! What `airlock import` asks of its caller and tells it back: the operator prompt for the
//! next volume, the options, and the outcome per bundle with the damage met on the way.

use std::{path::PathBuf, time::Duration};

use super::trust::{Signer, Trust};
use crate::{
    index::{BundleId, RefEntry},
    volume::{SignatureCopy, VolumeReader},
};

/// Asks the operator for the next volume (a single drive: "insert disc 3 of 5").
pub trait Prompt {
    /// Returns a path to read next (a volume, or a directory such as a mount point), or `None`
    /// to stop for now.
    fn next_volume(&self, bundle: &str, missing: &[u32], count: u32) -> Option<PathBuf>;
}

/// A frame or volume that could not be read.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The volume file.
    pub path: PathBuf,
    /// Its number.
    pub volume: u32,
    /// Offset of the damaged part.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl Damage {
    /// What is wrong at `offset` of volume `volume`, the file `path` (given or rebuilt).
    pub(super) fn new(path: &std::path::Path, volume: u32, offset: u64, what: String) -> Damage {
        Damage {
            path: path.to_owned(),
            volume,
            offset,
            what,
        }
    }

    /// What is wrong at `offset` of volume `v`.
    pub(super) fn at(v: &VolumeReader, offset: u64, what: String) -> Damage {
        let (path, volume) = (v.path().to_owned(), v.header().number);
        Damage {
            path,
            volume,
            offset,
            what,
        }
    }

    /// The damage of a volume whose own copy of the index is unusable (the import reads
    /// another's), if it is; else of one whose copy of the signature is.
    pub(super) fn of_index_copy(v: &VolumeReader) -> Option<Damage> {
        if let Some(problem) = v.index_problem() {
            let what = format!("its copy of the bundle index is unusable: {problem}");
            return Some(Damage::at(v, 0, what));
        }
        match v.signature() {
            SignatureCopy::Damaged(why) => Some(Damage::at(
                v,
                0,
                format!("its copy of the bundle's signature is unusable: {why}"),
            )),
            _ => None,
        }
    }
}

/// A data volume whose stripes were rebuilt from parity volumes.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// Its number.
    pub volume: u32,
    /// The file given (damaged), or where it would lie (not given).
    pub path: PathBuf,
    /// Whether it was given (only its damaged stripes were rebuilt) or not (all of it read).
    pub given: bool,
    /// Stripes rebuilt, by number from 0.
    pub stripes: Vec<u64>,
    /// Bytes of a stripe.
    pub stripe_bytes: u32,
    /// Data volumes read to rebuild them.
    pub from_volumes: Vec<u32>,
    /// Parity volumes read to rebuild them.
    pub from_parity: Vec<u32>,
}

/// A parity volume, or stripes of one, not used because they fail their checks.
#[derive(Debug, Clone)]
pub struct ParityProblem {
    /// The parity volume file.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

/// What happened to one bundle.
#[derive(Debug, Clone)]
pub struct BundleOutcome {
    /// The bundle's id.
    pub bundle_id: BundleId,
    /// Its name.
    pub name: String,
    /// Volumes it has.
    pub volume_count: u32,
    /// Whether it is fully imported: every blob verified, every tag moved.
    pub complete: bool,
    /// Volumes still needed (not given, or damaged), by number.
    pub missing_volumes: Vec<u32>,
    /// Damaged frames and volumes met on the way.
    pub damaged: Vec<Damage>,
    /// Data volumes rebuilt from parity, wholly (not given) or in part (damaged stripes).
    pub rebuilt: Vec<Rebuilt>,
    /// Parity volumes given for the bundle and used when needed.
    pub parity_volumes: Vec<PathBuf>,
    /// Parity volumes, or stripes of them, not used: they failed their checks.
    pub parity_problems: Vec<ParityProblem>,
    /// Why volumes not given were not rebuilt from the parity volumes given, when so.
    pub parity_short: Option<String>,
    /// References that cannot be imported yet (their blobs need a missing volume).
    pub affected: Vec<String>,
    /// The references of the bundle (all moved when complete).
    pub refs: Vec<RefEntry>,
    /// Who signed the bundle, as checked before anything was written.
    pub signer: Signer,
    /// Bytes read from volumes.
    pub bytes_read: u64,
    /// Chunks added to the store, and their raw bytes.
    pub new_chunks: u64,
    /// Raw bytes of the chunks added.
    pub new_bytes: u64,
    /// Blobs committed (verified) by this run.
    pub new_blobs: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// Volumes met that belong to no bundle being imported, or could not be opened at all.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// One entry per bundle met.
    pub bundles: Vec<BundleOutcome>,
    /// Files that are, or are named as, volumes but cannot be read (path, why): damaged,
    /// truncated, missing.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Paths given that are no volume, left alone (path, why): the bundle's index file when
    /// not needed, a README, checksums, `lost+found`.
    pub ignored: Vec<(PathBuf, String)>,
}

impl ImportReport {
    /// Whether every bundle met is complete and every volume was readable (what was ignored
    /// does not count).
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty() && self.bundles.iter().all(|b| b.complete)
    }
}

/// How to import.
#[derive(Default)]
pub struct ImportOptions<'a> {
    /// Asks for missing volumes (interactive, single drive); `None`: report them and stop.
    pub prompt: Option<&'a dyn Prompt>,
    /// Only say what would happen.
    pub dry_run: bool,
    /// Which signatures are trusted, and whether unsigned bundles are imported (the default
    /// trusts no key and refuses them).
    pub trust: Trust,
}

impl std::fmt::Debug for ImportOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("prompt", &self.prompt.is_some())
            .field("dry_run", &self.dry_run)
            .field("trust", &self.trust)
            .finish()
    }
}

/// `repo:tag` or `repo@digest`.
pub fn ref_text(r: &RefEntry) -> String {
    match &r.tag {
        Some(t) => format!("{}:{t}", r.repo),
        None => format!("{}@{}", r.repo, r.digest),
    }
}
