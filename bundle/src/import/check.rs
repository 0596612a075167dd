//! What an import checks before it writes anything: every blob description of the bundle
//! index parses within the store's limits (each recipe and script segment decompresses to at
//! most `airlock_store::MAX_SEGMENT_RAW_BYTES`, every length lies within the bytes present,
//! the recipe covers the content and the script makes the blob) and describes the blob the
//! index lists. One that does not stops the import, naming the file the index was read from,
//! its volume and the index's offset, before a frame is stored or the index saved.

use std::path::Path;

use airlock_store::BlobDescription;
use rayon::prelude::*;

use crate::{
    error::{Error, Result},
    index::{BlobEntry, BundleIndex},
    volume::VolumeReader,
};

/// Where an import's index was read: a volume's copy, or the copy an earlier run saved.
#[derive(Debug, Clone, Copy)]
pub(super) enum IndexAt<'a> {
    /// The index copy of this volume.
    Volume(&'a VolumeReader),
    /// The file an earlier run of the import saved in the store.
    Saved(&'a Path),
    /// A bundle index file given beside the volumes (`NAME.index.airlock`).
    File(&'a Path),
}

/// Checks every blob description of `index` (in parallel); the first refused is named.
pub(super) fn check_descriptions(index: &BundleIndex, at: IndexAt<'_>) -> Result<()> {
    index.blobs.par_iter().try_for_each(|blob| {
        description(blob).map(drop).map_err(|source| {
            let (path, volume, offset) = match at {
                IndexAt::Volume(v) => (
                    v.path(),
                    Some(v.header().number),
                    v.index_offset().unwrap_or(0),
                ),
                IndexAt::Saved(path) | IndexAt::File(path) => (path, None, 0),
            };
            Error::DescriptionRefused {
                path: path.to_owned(),
                volume,
                offset,
                digest: blob.digest.clone(),
                source: Box::new(source),
            }
        })
    })
}

/// Parses a blob's description from an index (checked whole: a bundle is never trusted) and
/// checks it describes the blob the index lists.
pub(super) fn description(blob: &BlobEntry) -> airlock_store::Result<BlobDescription> {
    let desc = BlobDescription::from_bytes(&blob.description)?;
    if desc.digest() != &blob.digest || desc.size() != blob.size {
        return Err(airlock_store::Error::DescriptionCorrupt {
            what: format!(
                "the index lists blob {} ({} bytes), its description is of {} ({} bytes)",
                blob.digest,
                blob.size,
                desc.digest(),
                desc.size()
            ),
        });
    }
    Ok(desc)
}
