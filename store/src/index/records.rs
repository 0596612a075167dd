//! The index's record types and their encodings.

use serde::{Deserialize, Serialize};

use crate::{
    Digest, PackId,
    layer::{Encoding, OpaqueReason},
    pack::ChunkLoc,
};

const CHUNK_RECORD_BYTES: usize = 32;
const _: () = assert!(CHUNK_RECORD_BYTES == 8 + 8 + 4 + 4 + 4 + 4);

/// Where a chunk is and how many blob recipes use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    /// The chunk's place in a pack.
    pub loc: ChunkLoc,
    /// Number of blobs whose recipe names this chunk (each blob counted once).
    pub refs: u32,
}

impl ChunkRecord {
    pub(crate) fn encode(&self) -> [u8; CHUNK_RECORD_BYTES] {
        let mut b = [0u8; CHUNK_RECORD_BYTES];
        b[0..8].copy_from_slice(&self.loc.pack.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.loc.frame_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.loc.frame_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.loc.raw_offset.to_le_bytes());
        b[24..28].copy_from_slice(&self.loc.raw_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.refs.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<ChunkRecord> {
        if b.len() != CHUNK_RECORD_BYTES {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        Some(ChunkRecord {
            loc: ChunkLoc {
                pack: PackId(u64_at(0)),
                frame_offset: u64_at(8),
                frame_len: u32_at(16),
                raw_offset: u32_at(20),
                raw_len: u32_at(24),
            },
            refs: u32_at(28),
        })
    }
}

/// State of a pack file as far as the index knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    /// Bytes of the file that committed transactions reference; anything after is a torn tail.
    pub len: u64,
    /// Whether the seal record was written (the pack takes no more frames).
    pub sealed: bool,
}

/// How a blob's recipe rebuilds its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeKind {
    /// Concatenate the pieces.
    Plain,
    /// The pieces are the decompressed payload; the script makes the gzip stream.
    Deflate {
        /// Bytes of decompressed payload the content recipe covers.
        plain_size: u64,
    },
}

/// How the chunker cut a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutLayout {
    /// Tar-aware all the way.
    Tar,
    /// Tar-aware, then plain after a block that did not parse.
    TarThenPlain,
    /// Plain CDC.
    Plain,
}

/// What the index knows of a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Size in bytes.
    pub size: u64,
    /// How the recipe is applied.
    pub kind: RecipeKind,
    /// How the content was cut.
    pub layout: CutLayout,
    /// The encoding recognised from the bytes.
    pub encoding: Encoding,
    /// Why a compressed blob is kept as its compressed bytes (`None`: it is not).
    pub opaque: Option<OpaqueReason>,
    /// Bytes of the script's reconstruction data and raw bytes (`Deflate` only).
    #[serde(rename = "rebuild_bytes")]
    pub script_bytes: u64,
    /// Number of chunk pieces in the recipe (with repeats).
    pub chunks: u64,
    /// Bytes kept inline in the recipe.
    pub inline_bytes: u64,
    /// Unix seconds when the blob was committed.
    pub created: u64,
    /// Unix seconds when it was last put again or linked as a blob (0: never); the GC grace
    /// period runs from the later of this and `created`.
    #[serde(default)]
    pub touched: u64,
    /// The preflate-rs version of the airlock that wrote the script (`Deflate` blobs): the
    /// version of whatever preflate-rs correction data it holds. Records written before it was
    /// recorded per blob lack it; their data is of the version `store.json` names. An added
    /// field, which the airlocks before it ignore (records are JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflate: Option<String>,
}

impl BlobRecord {
    /// When the blob was last stored, put again or linked as a blob.
    pub fn last_touched(&self) -> u64 {
        self.created.max(self.touched)
    }

    /// The preflate-rs version of the correction data in the blob's script: its own record's,
    /// else `store_wide`, what `store.json` names for records written before it was recorded
    /// per blob.
    pub fn preflate_version<'a>(&'a self, store_wide: &'a str) -> &'a str {
        self.preflate.as_deref().unwrap_or(store_wide)
    }
}

/// A blob received whole and durable but not yet cut into chunks (issue 14): its bytes are the
/// file `staged/<algorithm>-<hex>` until the ingest stores them as chunks and drops this
/// record. A blob is staged or stored ([`BlobRecord`]), and when both records exist (a crash
/// between the ingest's commit and its cleanup) the stored one is the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    /// Size in bytes.
    pub size: u64,
    /// The encoding recognised from its first bytes.
    pub encoding: Encoding,
    /// Unix seconds when it was staged.
    pub created: u64,
    /// Unix seconds when it was staged again or linked as a blob (0: never).
    #[serde(default)]
    pub touched: u64,
}

impl StagedRecord {
    /// When the blob was last staged or linked: the GC grace period runs from it.
    pub fn last_touched(&self) -> u64 {
        self.created.max(self.touched)
    }
}

/// How a repository holds a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkKind(pub(crate) u8);

impl LinkKind {
    /// A blob (layer, config) uploaded to or mounted into the repository.
    pub const BLOB: LinkKind = LinkKind(1);
    /// A manifest pushed to the repository.
    pub const MANIFEST: LinkKind = LinkKind(2);
    /// Every kind, to drop a link whatever it holds.
    pub const ALL: LinkKind = LinkKind(u8::MAX);

    /// Whether all of `other`'s bits are set.
    pub fn contains(self, other: LinkKind) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn union(self, other: LinkKind) -> LinkKind {
        LinkKind(self.0 | other.0)
    }

    pub(crate) fn minus(self, other: LinkKind) -> LinkKind {
        LinkKind(self.0 & !other.0)
    }
}

/// One change of a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEvent {
    /// What the tag pointed to after the change (`None`: deleted).
    pub digest: Option<Digest>,
    /// Unix seconds of the change.
    pub time: u64,
}
