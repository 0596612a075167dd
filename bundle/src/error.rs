//! Every failure of the bundle format layer, naming the file and offset at fault.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong reading or writing a bundle volume, index or inventory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file does not start with the volume magic.
    #[error("{}: not an airlock volume", path.display())]
    NotAVolume {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before its trailer (or before its header): it was cut short.
    #[error("{}: volume truncated at {len} bytes (no valid trailer at its end)", path.display())]
    VolumeTruncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Part of a volume (header, trailer, index copy) fails its checks.
    #[error("{}: {what} at offset {offset}", path.display())]
    VolumeCorrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the damaged part.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A frame read from a volume is not where the index says or fails its checks.
    #[error("{}: frame at offset {offset}: {what}", path.display())]
    FrameCorrupt {
        /// The volume file.
        path: PathBuf,
        /// Offset of the frame in the volume.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A file written by a newer (or unknown) format version.
    #[error("{}: {kind} format version {version} is not supported (this build reads {supported})", path.display())]
    UnsupportedVersion {
        /// The file (empty for bytes that came from no file).
        path: PathBuf,
        /// "volume", "index" or "inventory".
        kind: &'static str,
        /// The version found.
        version: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Bundle index bytes that do not decode.
    #[error("bundle index is corrupt: {what}")]
    IndexCorrupt {
        /// What is wrong.
        what: String,
    },
    /// A bundle index too large to encode (a count or length beyond the format's fields).
    #[error("bundle index cannot be encoded: {what}")]
    IndexTooLarge {
        /// What overflows.
        what: String,
    },
    /// An inventory file that does not decode or fails its check.
    #[error("{}: inventory is corrupt: {what}", path.display())]
    InventoryCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A frame does not fit in the room left in a volume.
    #[error("{}: volume full: frame of {needed} bytes, {room} bytes of room left", path.display())]
    VolumeFull {
        /// The volume being written.
        path: PathBuf,
        /// Bytes of the frame.
        needed: u64,
        /// Bytes left for frames.
        room: u64,
    },
    /// Finishing a volume would make it larger than its capacity.
    #[error("{}: volume would be {len} bytes, over its capacity of {capacity} bytes", path.display())]
    CapacityExceeded {
        /// The volume being written.
        path: PathBuf,
        /// Bytes the finished volume would have.
        len: u64,
        /// The capacity.
        capacity: u64,
    },
    /// Bytes given to a volume writer as a frame are not one whole store frame.
    #[error("not a whole frame: {what}")]
    NotAFrame {
        /// What is wrong.
        what: String,
    },
    /// A bundle name that cannot be a file name prefix.
    #[error("invalid bundle name {name:?}: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A volume number outside 1..=count, or a volume writer argument out of range.
    #[error("invalid volume number {number}: {why}")]
    InvalidVolumeNumber {
        /// The number given.
        number: u32,
        /// Why it is refused.
        why: &'static str,
    },
    /// A volume size that does not parse.
    #[error(
        "invalid volume size {text:?}: expected cd, dvd, dvd-dl, bd, bd-dl, or a positive number of \
         bytes with an optional unit (B, K, KB, kB, M, MB, G, GB, T, TB = powers of 1000; \
         KiB, MiB, GiB, TiB = powers of 1024), e.g. 2GiB, 700M"
    )]
    InvalidSize {
        /// The text given.
        text: String,
    },
    /// A reference the store cannot resolve.
    #[error("{reference}: {why}")]
    UnknownReference {
        /// The reference as written.
        reference: String,
        /// Why it cannot be resolved.
        why: &'static str,
    },
    /// What an export walks is incomplete or inconsistent.
    #[error("{what}")]
    Walk {
        /// What is wrong, naming the manifest and blob.
        what: String,
    },
    /// The store failed.
    #[error("{context}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        #[source]
        source: airlock_store::Error,
    },
    /// A blob of a bundle that does not rebuild to its digest from the bundle's chunks.
    #[error("blob {digest} of the bundle is refused")]
    BlobRejected {
        /// The blob.
        digest: airlock_store::Digest,
        /// Why.
        #[source]
        source: airlock_store::Error,
    },
    /// A parity volume's header, or the part of it being read, is unusable.
    #[error("{}: parity volume: {what} at offset {offset}", path.display())]
    ParityCorrupt {
        /// The parity volume file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Parity cannot be made as asked (counts beyond the code's limits).
    #[error("parity volumes cannot be made: {what}")]
    ParityUnsupported {
        /// Why.
        what: String,
    },
    /// The volume size cannot hold a bundle's index and one frame.
    #[error(
        "a volume of {size} bytes is too small for this bundle: it needs at least {needed} bytes \
         (header, trailer, the bundle index, and one frame)"
    )]
    VolumeTooSmall {
        /// The volume size asked for.
        size: u64,
        /// Bytes needed at least.
        needed: u64,
    },
    /// A file given as the airlock program for volume 1 is not one.
    #[error("{}: cannot go on volume 1 as the airlock program: {why}", path.display())]
    NotAProgram {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The volume size leaves volume 1 no room for the airlock program beside it.
    #[error("a volume of {size} bytes leaves no room on volume 1 for the airlock program {} \
             (needs {needed} bytes): give a larger --volume-size, or --no-binary", program.display())]
    NoRoomForProgram {
        /// The volume size asked for.
        size: u64,
        /// The program.
        program: PathBuf,
        /// Bytes volume 1 needs at least.
        needed: u64,
    },
    /// An export would overwrite an existing bundle file.
    #[error("{} already exists: choose another --name or --out, or remove the old bundle", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A directory given to import holds no volume.
    #[error("{}: no volume files (NAME.NNN.airlock) in this directory", path.display())]
    NoVolumes {
        /// The directory.
        path: PathBuf,
    },
    /// None of the paths given to import is a volume or a directory holding volumes.
    #[error(
        "none of the {given} path(s) given is an airlock volume (NAME.NNN.airlock) or a \
         directory holding volumes"
    )]
    NothingToImport {
        /// How many paths were given.
        given: usize,
    },
    /// No readable index for a bundle: every volume given has a damaged index copy and no
    /// earlier run saved one.
    #[error(
        "bundle {bundle_id}: no readable bundle index in the volumes given ({problems}); give \
         another volume of this bundle (each carries a copy)"
    )]
    NoIndex {
        /// The bundle.
        bundle_id: crate::index::BundleId,
        /// Why each volume's copy is unusable, naming the file, volume and offset.
        problems: String,
    },
    /// A blob description in a bundle index is refused before the import writes anything: a
    /// recipe or script segment that would expand past its limit, a length beyond the bytes
    /// present, a recipe or script that does not add up.
    #[error(
        "{}{}: bundle index at offset {offset}: blob {digest} is refused",
        path.display(),
        volume.map(|n| format!(" (volume {n})")).unwrap_or_default()
    )]
    DescriptionRefused {
        /// The volume whose index copy holds it (or the index an earlier run saved).
        path: PathBuf,
        /// That volume's number; `None` for a saved index.
        volume: Option<u32>,
        /// Offset of the index in the file.
        offset: u64,
        /// The blob.
        digest: airlock_store::Digest,
        /// Why its description is refused.
        #[source]
        source: Box<airlock_store::Error>,
    },
    /// A delta bundle whose base is not in the store.
    #[error(
        "bundle {bundle} is a delta: {blobs} blob(s) need {chunks} chunk(s) it does not carry and \
         this store lacks (images: {images}); it was made against {base}"
    )]
    BaseMissing {
        /// The delta bundle's name.
        bundle: String,
        /// Chunks lacking.
        chunks: u64,
        /// Blobs that need them.
        blobs: u64,
        /// References affected.
        images: String,
        /// What the bundle was made against, and what to do.
        base: String,
    },
    /// A minisign key file that cannot be used: not a key, damaged, or a wrong password.
    #[error("{}: {what}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Making a key pair or a signature failed.
    #[error("signing: {what}")]
    Signing {
        /// What failed.
        what: String,
    },
    /// An import refused because of its signature, before anything was written: unsigned, by
    /// a key the site does not trust, or a signature that does not verify.
    #[error("{bundle}: {what}; nothing was imported")]
    SignatureRefused {
        /// The bundle's name and id.
        bundle: String,
        /// What is wrong, naming the volume or file and the key id, and what to do.
        what: String,
    },
    /// A bundle id or inventory id that is not 32 hex digits.
    #[error("invalid id {text:?}: expected 32 lowercase hex digits")]
    InvalidId {
        /// The text given.
        text: String,
    },
}

/// OCI errors reach a bundle only from the manifest walk (a graph nested too deep).
impl From<airlock_oci::Error> for Error {
    fn from(err: airlock_oci::Error) -> Self {
        Error::Walk {
            what: err.to_string(),
        }
    }
}

impl Error {
    pub(crate) fn store(context: String, source: airlock_store::Error) -> Error {
        Error::Store { context, source }
    }
}

/// Attaches `path` to an io::Error.
pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
