//! The bundle format: how an export leaves a store as volume files that fit removable media,
//! and how an import reads them back. This crate owns the byte layouts (bundle/FORMAT.md):
//! volumes (a header, store pack frames verbatim, a copy of the bundle index, its signature, a
//! trailer), parity volumes, the bundle index codec, the standalone index file and its `.minisig`
//! signature, inventories of a site's store, and media sizes.
//!
//! It knows nothing of HTTP, and nothing of how frames are chosen or chunks inserted: export
//! and import sit on top of it. Frames are the store's (`airlock_store::Frame`); only `volume`
//! knows the volume layout, only `codec` the index encoding, only `inventory` the inventory
//! file; every codec reads hostile input without panicking or allocating beyond its input or
//! a stated limit, and an import checks every blob description (its segments bounded by the
//! store's limits) and the bundle's signature (only `sign` knows minisign) before it writes
//! anything.
//!
//! # Overview
//! - [`VolumeWriter`] writes `NAME.NNN.airlock`, never past its capacity; [`VolumeReader`]
//!   opens one, returning its [`VolumeHeader`] even when its trailer or index is damaged.
//! - [`BundleIndex`]: refs, manifests, blobs with their chunks, frames per volume;
//!   [`BundleIndex::encode`], [`BundleIndex::decode`], [`BundleIndex::encoded_len_bound`].
//! - [`ParityReader`]: a parity volume `NAME.parity.NN.airlock` (`export --parity N`), whose
//!   Reed-Solomon shards and per-stripe checks let an import rebuild missing or damaged volumes.
//! - [`Inventory`]: the chunks and blobs a site has, for delta exports.
//! - Signatures (minisign's format): [`KeyPair`], [`SecretKeyFile`] -> [`SigningKey`] for
//!   [`ExportOptions::signer`]; [`TrustedKeys`] in [`Trust`] for [`ImportOptions::trust`];
//!   the import's [`Signer`] says who signed.
//! - [`plan_delta`] -> [`DeltaPlan`]: what a delta between two sets of references in one store
//!   would ship (`airlock diff`).
//! - [`VolumeSize`]: `cd`, `dvd`, ... or `2GiB`.
//! - [`Error`]: every failure, naming the file and offset.
//!
//! ```
//! use airlock_bundle::{BundleId, BundleIndex, VolumeReader, VolumeWriter};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let index = BundleIndex {
//!     bundle_id: BundleId::random(), name: "app".into(), created: 0, tool: "airlock".into(),
//!     base: None, refs: vec![], manifests: vec![], blobs: vec![], volume_count: 1,
//!     volumes: vec![],
//! };
//! let bytes = index.encode().unwrap();
//! let writer = VolumeWriter::create(dir.path(), "app", 1, index.bundle_id, 1 << 20).unwrap();
//! let path = writer.finish(1, &bytes).unwrap();
//! let volume = VolumeReader::open(&path).unwrap();
//! assert_eq!(volume.header().bundle_id, index.bundle_id);
//! assert_eq!(volume.index(), Some(&index));
//! ```

mod codec;
mod content;
mod diff;
mod error;
mod export;
mod import;
mod index;
mod inventory;
mod names;
mod parity;
mod progress;
mod sign;
mod size;
mod starter;
mod state;
mod volume;
mod wire;

pub use crate::{
    codec::{INDEX_FORMAT_VERSION, INDEX_HEADER_LEN, INDEX_MAGIC, MAX_INDEX_RAW_BYTES},
    content::{Content, collect, resolve},
    diff::{DeltaPlan, inventory_of, plan_delta},
    error::{Error, Result},
    export::{
        DEFAULT_LEVEL, ExportOptions, ExportPlan, ExportReport, FRAME_RAW_BYTES, Have, ImagePlan,
        ParityPlan, plan_export, write_export,
    },
    import::{
        BundleOutcome, Damage, ImportOptions, ImportReport, Prompt, Signer, Trust, import, ref_text,
    },
    index::{
        Base, BlobEntry, BundleId, BundleIndex, FrameEntry, FrameRef, InventoryId, ManifestEntry,
        RefEntry, VolumeEntry,
    },
    inventory::{INVENTORY_FORMAT_VERSION, Inventory, InventoryBuilder},
    names::{
        BUNDLE_SUFFIX, VolumeFile, check_bundle_name, index_file_name, list_parity_files,
        list_volume_files, parity_file_name, parse_parity_file_name, parse_volume_file_name,
        signature_file_name, volume_file_name,
    },
    parity::{
        MAX_PARITY_VOLUMES, PARITY_FORMAT_VERSION, ParityHeader, ParityReader, parity_reserve,
        stripe_bytes_for,
    },
    progress::{NoProgress, Progress},
    sign::{
        KeyId, KeyPair, MAX_SIGNATURE_BYTES, SIGNATURE_SUFFIX, SecretKeyFile, SignatureText,
        SigningKey, TrustedKey, TrustedKeys,
    },
    size::{DISCS, VolumeSize},
    starter::{
        Arch, OLDEST_GLIBC, PROGRAM_FILE, Program, README_FILE, SUMS_FILE, SUMS_SIGNATURE_FILE,
    },
    volume::{
        FLAG_SIGNED, PendingVolume, SignatureCopy, VOLUME_FORMAT_VERSION, VOLUME_HEADER_LEN,
        VOLUME_TRAILER_LEN, VOLUME_TRAILER_LEN_V1, VolumeHeader, VolumeReader, VolumeWriter,
    },
};
