//! The redb index: the only module that imports redb.
//!
//! Tables (keys -> values):
//! - `meta`: name -> bytes (store-wide settings, the next pack id)
//! - `chunks`: chunk id -> [`ChunkRecord`] (location in a pack, reference count)
//! - `packs`: pack id -> [`PackRecord`] (committed length, sealed)
//! - `blobs`: digest -> [`BlobRecord`] (size, kind, how it was cut)
//! - `recipes`: (digest, logical start offset) -> one encoded recipe segment (of the content:
//!   for a `Deflate` blob, offsets into its decompressed payload)
//! - `rebuilds`: (digest, output start offset) -> one encoded rebuild-script segment (`Deflate`
//!   blobs only)
//! - `repos`: repository -> creation time
//! - `links`: (repository, digest) -> [`LinkKind`] bits
//! - `tags`: (repository, tag) -> digest; `tag_history`: (repository, tag, seq) -> [`TagEvent`]
//! - `edges`: manifest digest -> digests it references (multimap)
//! - `referrers`: (repository, subject, referrer) -> opaque descriptor bytes
//! - `uploads`: upload id -> opaque session bytes
//! - `media_types`: manifest digest -> the media type it was pushed with

use std::path::{Path, PathBuf};

use airlock_chunker::ChunkId;
use redb::{
    Database, MultimapTableDefinition, ReadOnlyDatabase, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::{
    Access, Digest, Error, PackId, Result,
    layer::{Encoding, OpaqueReason},
    pack::ChunkLoc,
    rebuild::{Corrections, Op, decode_script_segment},
    recipe::{Entry, decode_segment},
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHUNKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("chunks");
const PACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("packs");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const RECIPES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recipes");
const REBUILDS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("rebuilds");
const REPOS: TableDefinition<&str, u64> = TableDefinition::new("repos");
const LINKS: TableDefinition<(&str, &str), u8> = TableDefinition::new("links");
const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tags");
const TAG_HISTORY: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("tag_history");
const EDGES: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("edges");
const REFERRERS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("referrers");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const MEDIA_TYPES: TableDefinition<&str, &str> = TableDefinition::new("media_types");

const NEXT_PACK: &str = "next_pack";

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
    fn encode(&self) -> [u8; CHUNK_RECORD_BYTES] {
        let mut b = [0u8; CHUNK_RECORD_BYTES];
        b[0..8].copy_from_slice(&self.loc.pack.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.loc.frame_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.loc.frame_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.loc.raw_offset.to_le_bytes());
        b[24..28].copy_from_slice(&self.loc.raw_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.refs.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<ChunkRecord> {
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
    /// The pieces are the decompressed payload; the rebuild script makes the gzip stream.
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
    /// Bytes of the rebuild script's correction data and raw framing (`Deflate` only).
    pub rebuild_bytes: u64,
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
}

impl BlobRecord {
    /// When the blob was last stored, put again or linked as a blob.
    pub fn last_touched(&self) -> u64 {
        self.created.max(self.touched)
    }
}

/// How a repository holds a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkKind(u8);

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

    fn union(self, other: LinkKind) -> LinkKind {
        LinkKind(self.0 | other.0)
    }

    fn minus(self, other: LinkKind) -> LinkKind {
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

/// The open index database.
pub struct Index {
    db: Db,
    path: PathBuf,
}

/// redb's two kinds of open database: a read-only one takes a shared lock and never writes.
enum Db {
    ReadWrite(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

fn err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Index {
        path: path.to_owned(),
        what: e.to_string(),
    }
}

macro_rules! ix {
    ($self:ident, $e:expr) => {
        $e.map_err(|e| err(&$self.path)(&e))
    };
}

impl Index {
    /// Opens the index at `path`. Read-write, it is created if needed and every table made to
    /// exist; read-only, it must exist and nothing is written (other readers may share it).
    pub fn open(path: &Path, access: Access) -> Result<Index> {
        if access == Access::ReadOnly {
            let db = match ReadOnlyDatabase::open(path) {
                // Left by a writer that did not close (a crash): redb must rebuild its
                // allocator state before anyone reads. That changes no content, so a reader
                // does it once, if it can (not on read-only media, nor beside other readers).
                Err(redb::DatabaseError::RepairAborted) => {
                    drop(Database::open(path).map_err(|e| Error::Index {
                        path: path.to_owned(),
                        what: format!(
                            "the index needs the repair that follows a crash and it failed \
                             ({e}); open the store read-write once"
                        ),
                    })?);
                    ReadOnlyDatabase::open(path)
                }
                other => other,
            }
            .map_err(|e| err(path)(&e))?;
            return Ok(Index {
                db: Db::ReadOnly(db),
                path: path.to_owned(),
            });
        }
        let db = Database::create(path).map_err(|e| err(path)(&e))?;
        let tx = db.begin_write().map_err(|e| err(path)(&e))?;
        let index = Index {
            db: Db::ReadWrite(db),
            path: path.to_owned(),
        };
        {
            ix!(index, tx.open_table(META))?;
            ix!(index, tx.open_table(CHUNKS))?;
            ix!(index, tx.open_table(PACKS))?;
            ix!(index, tx.open_table(BLOBS))?;
            ix!(index, tx.open_table(RECIPES))?;
            ix!(index, tx.open_table(REBUILDS))?;
            ix!(index, tx.open_table(REPOS))?;
            ix!(index, tx.open_table(LINKS))?;
            ix!(index, tx.open_table(TAGS))?;
            ix!(index, tx.open_table(TAG_HISTORY))?;
            ix!(index, tx.open_multimap_table(EDGES))?;
            ix!(index, tx.open_table(REFERRERS))?;
            ix!(index, tx.open_table(UPLOADS))?;
            ix!(index, tx.open_table(MEDIA_TYPES))?;
        }
        ix!(index, tx.commit())?;
        Ok(index)
    }

    /// A consistent read-only view.
    pub fn read(&self) -> Result<ReadTx<'_>> {
        let tx = match &self.db {
            Db::ReadWrite(db) => ix!(self, db.begin_read())?,
            Db::ReadOnly(db) => ix!(self, db.begin_read())?,
        };
        Ok(ReadTx {
            tx,
            path: &self.path,
        })
    }

    /// A write transaction; nothing is visible or durable until [`WriteTx::commit`].
    pub fn write(&self) -> Result<WriteTx<'_>> {
        let Db::ReadWrite(db) = &self.db else {
            return Err(Error::Index {
                path: self.path.clone(),
                what: "the index is open read-only".into(),
            });
        };
        Ok(WriteTx {
            tx: ix!(self, db.begin_write())?,
            path: &self.path,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Index {
        path: path.to_owned(),
        what: format!("undecodable {what} record: {e}"),
    })
}

fn encode_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode_chunk(path: &Path, id: &ChunkId, b: &[u8]) -> Result<ChunkRecord> {
    ChunkRecord::decode(b).ok_or_else(|| Error::Index {
        path: path.to_owned(),
        what: format!("undecodable record for chunk {id}"),
    })
}

/// Reads shared by both transaction kinds, written once over redb's `ReadableTable`.
macro_rules! reads {
    ($t:ty) => {
        // Not every read is needed on both transaction kinds.
        #[allow(dead_code)]
        impl $t {
            /// The record of a chunk, if indexed.
            pub fn chunk(&self, id: &ChunkId) -> Result<Option<ChunkRecord>> {
                let t = ix!(self, self.tx.open_table(CHUNKS))?;
                match ix!(self, t.get(id.as_bytes()))? {
                    Some(v) => Ok(Some(decode_chunk(self.path, id, v.value())?)),
                    None => Ok(None),
                }
            }

            /// The record of a blob, if stored.
            pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
                let t = ix!(self, self.tx.open_table(BLOBS))?;
                let key = digest.to_string();
                match ix!(self, t.get(key.as_str()))? {
                    Some(v) => Ok(Some(decode_json(self.path, "blob", v.value())?)),
                    None => Ok(None),
                }
            }

            /// Every pack and its record.
            pub fn packs(&self) -> Result<Vec<(PackId, PackRecord)>> {
                let t = ix!(self, self.tx.open_table(PACKS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, v) = ix!(self, row)?;
                    out.push((
                        PackId(k.value()),
                        decode_json(self.path, "pack", v.value())?,
                    ));
                }
                Ok(out)
            }

            /// The recipe segment covering logical `offset` of a blob: its start and bytes.
            pub fn recipe_segment_at(
                &self,
                digest: &Digest,
                offset: u64,
            ) -> Result<Option<(u64, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(RECIPES))?;
                let key = digest.to_string();
                let mut range = ix!(self, t.range((key.as_str(), 0)..=(key.as_str(), offset)))?;
                match range.next_back() {
                    Some(row) => {
                        let (k, v) = ix!(self, row)?;
                        Ok(Some((k.value().1, v.value().to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// The recipe segment starting strictly after `start`, if any.
            pub fn recipe_segment_after(
                &self,
                digest: &Digest,
                start: u64,
            ) -> Result<Option<(u64, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(RECIPES))?;
                let key = digest.to_string();
                if start == u64::MAX {
                    return Ok(None);
                }
                let mut range = ix!(
                    self,
                    t.range((key.as_str(), start + 1)..=(key.as_str(), u64::MAX))
                )?;
                match range.next() {
                    Some(row) => {
                        let (k, v) = ix!(self, row)?;
                        Ok(Some((k.value().1, v.value().to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// Every entry of a blob's recipe, in order, or a description of the damage.
            pub fn recipe_entries(
                &self,
                digest: &Digest,
                size: u64,
            ) -> Result<std::result::Result<Vec<Entry>, String>> {
                let mut out = Vec::new();
                let mut offset = 0u64;
                let mut seg = self.recipe_segment_at(digest, 0)?;
                while let Some((start, bytes)) = seg {
                    if start != offset {
                        return Ok(Err(format!("segment starts at {start}, expected {offset}")));
                    }
                    let Some(entries) = decode_segment(&bytes) else {
                        return Ok(Err(format!("segment at {start} does not decode")));
                    };
                    for e in entries {
                        offset += e.len();
                        out.push(e);
                    }
                    seg = self.recipe_segment_after(digest, start)?;
                }
                if offset != size {
                    return Ok(Err(format!(
                        "recipe covers {offset} bytes, the blob has {size}"
                    )));
                }
                Ok(Ok(out))
            }

            /// The rebuild-script segment after the one starting at `after` (the first with
            /// `None`): its output start and bytes.
            pub fn script_segment_after(
                &self,
                digest: &Digest,
                after: Option<u64>,
            ) -> Result<Option<(u64, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(REBUILDS))?;
                let key = digest.to_string();
                let from = match after {
                    None => 0,
                    Some(u64::MAX) => return Ok(None),
                    Some(a) => a + 1,
                };
                let mut range = ix!(
                    self,
                    t.range((key.as_str(), from)..=(key.as_str(), u64::MAX))
                )?;
                match range.next() {
                    Some(row) => {
                        let (k, v) = ix!(self, row)?;
                        Ok(Some((k.value().1, v.value().to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// Every op of a blob's rebuild script, or a description of the damage.
            pub fn script_ops(
                &self,
                digest: &Digest,
                size: u64,
                plain_size: u64,
            ) -> Result<std::result::Result<Vec<Op>, String>> {
                let (mut out, mut offset, mut plain) = (Vec::new(), 0u64, 0u64);
                let mut seg = self.script_segment_after(digest, None)?;
                while let Some((start, bytes)) = seg {
                    if start != offset {
                        return Ok(Err(format!(
                            "rebuild segment starts at {start}, expected {offset}"
                        )));
                    }
                    let Some(ops) = decode_script_segment(&bytes) else {
                        return Ok(Err(format!("rebuild segment at {start} does not decode")));
                    };
                    for op in ops {
                        offset += op.out_len();
                        plain += op.plain_len();
                        out.push(op);
                    }
                    seg = self.script_segment_after(digest, Some(start))?;
                }
                if offset != size || plain != plain_size {
                    return Ok(Err(format!(
                        "rebuild script makes {offset} bytes from {plain} payload bytes, the \
                         blob has {size} from {plain_size}"
                    )));
                }
                Ok(Ok(out))
            }

            /// Every chunk a blob's recipes name (content and rebuild script), once each, or
            /// a description of the damage.
            pub fn blob_chunk_ids(
                &self,
                digest: &Digest,
                rec: &BlobRecord,
            ) -> Result<std::result::Result<std::collections::BTreeSet<ChunkId>, String>> {
                let content_size = match rec.kind {
                    RecipeKind::Plain => rec.size,
                    RecipeKind::Deflate { plain_size } => plain_size,
                };
                let entries = match self.recipe_entries(digest, content_size)? {
                    Ok(e) => e,
                    Err(what) => return Ok(Err(what)),
                };
                let mut ids: std::collections::BTreeSet<ChunkId> = entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Chunk { id, .. } => Some(*id),
                        Entry::Inline(_) => None,
                    })
                    .collect();
                if let RecipeKind::Deflate { plain_size } = rec.kind {
                    let ops = match self.script_ops(digest, rec.size, plain_size)? {
                        Ok(o) => o,
                        Err(what) => return Ok(Err(what)),
                    };
                    ids.extend(ops.iter().filter_map(|op| match op {
                        Op::Step {
                            corrections: Corrections::Chunk { id, .. },
                            ..
                        } => Some(*id),
                        _ => None,
                    }));
                }
                Ok(Ok(ids))
            }

            /// Every stored blob's digest, in order, starting after `after`, at most `limit`.
            pub fn blobs_page(
                &self,
                after: Option<&Digest>,
                limit: usize,
            ) -> Result<Vec<(Digest, BlobRecord)>> {
                let t = ix!(self, self.tx.open_table(BLOBS))?;
                let start = after.map(|d| d.to_string());
                let iter = match &start {
                    Some(s) => ix!(
                        self,
                        t.range::<&str>((
                            std::ops::Bound::Excluded(s.as_str()),
                            std::ops::Bound::Unbounded
                        ))
                    )?,
                    None => ix!(self, t.iter())?,
                };
                let mut out = Vec::new();
                for row in iter.take(limit) {
                    let (k, v) = ix!(self, row)?;
                    let digest: Digest = k.value().parse()?;
                    out.push((digest, decode_json(self.path, "blob", v.value())?));
                }
                Ok(out)
            }

            /// Every indexed chunk, in id order, starting after `after`, at most `limit`.
            pub fn chunks_page(
                &self,
                after: Option<&ChunkId>,
                limit: usize,
            ) -> Result<Vec<(ChunkId, ChunkRecord)>> {
                let t = ix!(self, self.tx.open_table(CHUNKS))?;
                let iter = match after {
                    Some(a) => ix!(
                        self,
                        t.range::<[u8; 32]>((
                            std::ops::Bound::Excluded(*a.as_bytes()),
                            std::ops::Bound::Unbounded
                        ))
                    )?,
                    None => ix!(self, t.iter())?,
                };
                let mut out = Vec::new();
                for row in iter.take(limit) {
                    let (k, v) = ix!(self, row)?;
                    let id = ChunkId::from_bytes(k.value());
                    out.push((id, decode_chunk(self.path, &id, v.value())?));
                }
                Ok(out)
            }

            /// The digest a tag points to.
            pub fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
                let t = ix!(self, self.tx.open_table(TAGS))?;
                match ix!(self, t.get((repo, tag)))? {
                    Some(v) => Ok(Some(v.value().parse()?)),
                    None => Ok(None),
                }
            }

            /// All tags of a repository with their digests, sorted by tag.
            pub fn tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
                let t = ix!(self, self.tx.open_table(TAGS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.range((repo, "")..))? {
                    let (k, v) = ix!(self, row)?;
                    let (r, tag) = k.value();
                    if r != repo {
                        break;
                    }
                    out.push((tag.to_owned(), v.value().parse()?));
                }
                Ok(out)
            }

            /// Every (repository, tag, digest).
            pub fn all_tags(&self) -> Result<Vec<(String, String, Digest)>> {
                let t = ix!(self, self.tx.open_table(TAGS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, v) = ix!(self, row)?;
                    let (r, tag) = k.value();
                    out.push((r.to_owned(), tag.to_owned(), v.value().parse()?));
                }
                Ok(out)
            }

            /// The history of a tag, oldest first, as (sequence, event).
            pub fn tag_history(&self, repo: &str, tag: &str) -> Result<Vec<(u64, TagEvent)>> {
                let t = ix!(self, self.tx.open_table(TAG_HISTORY))?;
                let mut out = Vec::new();
                for row in ix!(self, t.range((repo, tag, 0)..=(repo, tag, u64::MAX)))? {
                    let (k, v) = ix!(self, row)?;
                    out.push((k.value().2, decode_json(self.path, "tag event", v.value())?));
                }
                Ok(out)
            }

            /// Every tag-history event of the store as (repository, tag, event).
            pub fn all_tag_history(&self) -> Result<Vec<(String, String, TagEvent)>> {
                let t = ix!(self, self.tx.open_table(TAG_HISTORY))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, v) = ix!(self, row)?;
                    let (r, tag, _) = k.value();
                    out.push((
                        r.to_owned(),
                        tag.to_owned(),
                        decode_json(self.path, "tag event", v.value())?,
                    ));
                }
                Ok(out)
            }

            /// Repositories, sorted.
            pub fn repos(&self) -> Result<Vec<String>> {
                let t = ix!(self, self.tx.open_table(REPOS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    out.push(ix!(self, row)?.0.value().to_owned());
                }
                Ok(out)
            }

            /// How `repo` holds `digest`, if at all.
            pub fn link(&self, repo: &str, digest: &Digest) -> Result<Option<LinkKind>> {
                let t = ix!(self, self.tx.open_table(LINKS))?;
                let d = digest.to_string();
                Ok(ix!(self, t.get((repo, d.as_str())))?.map(|v| LinkKind(v.value())))
            }

            /// Every link of the store as (repository, digest, kind).
            pub fn all_links(&self) -> Result<Vec<(String, Digest, LinkKind)>> {
                let t = ix!(self, self.tx.open_table(LINKS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, v) = ix!(self, row)?;
                    let (r, d) = k.value();
                    out.push((r.to_owned(), d.parse()?, LinkKind(v.value())));
                }
                Ok(out)
            }

            /// Digests a manifest references.
            pub fn edges(&self, parent: &Digest) -> Result<Vec<Digest>> {
                let t = ix!(self, self.tx.open_multimap_table(EDGES))?;
                let p = parent.to_string();
                let mut out = Vec::new();
                for v in ix!(self, t.get(p.as_str()))? {
                    out.push(ix!(self, v)?.value().parse()?);
                }
                Ok(out)
            }

            /// Referrers of `subject` in `repo`: (referrer digest, opaque descriptor bytes).
            pub fn referrers(
                &self,
                repo: &str,
                subject: &Digest,
            ) -> Result<Vec<(Digest, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(REFERRERS))?;
                let s = subject.to_string();
                let mut out = Vec::new();
                for row in ix!(self, t.range((repo, s.as_str(), "")..))? {
                    let (k, v) = ix!(self, row)?;
                    let (r, sub, referrer) = k.value();
                    if r != repo || sub != s {
                        break;
                    }
                    out.push((referrer.parse()?, v.value().to_vec()));
                }
                Ok(out)
            }

            /// The media type a manifest was pushed with.
            pub fn media_type(&self, digest: &Digest) -> Result<Option<String>> {
                let t = ix!(self, self.tx.open_table(MEDIA_TYPES))?;
                let d = digest.to_string();
                Ok(ix!(self, t.get(d.as_str()))?.map(|v| v.value().to_owned()))
            }

            /// An upload session's bytes.
            pub fn upload(&self, id: &str) -> Result<Option<Vec<u8>>> {
                let t = ix!(self, self.tx.open_table(UPLOADS))?;
                Ok(ix!(self, t.get(id))?.map(|v| v.value().to_vec()))
            }

            /// Every upload session as (id, bytes).
            pub fn uploads(&self) -> Result<Vec<(String, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(UPLOADS))?;
                let mut out = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, v) = ix!(self, row)?;
                    out.push((k.value().to_owned(), v.value().to_vec()));
                }
                Ok(out)
            }

            /// A store-wide setting.
            pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
                let t = ix!(self, self.tx.open_table(META))?;
                Ok(ix!(self, t.get(key))?.map(|v| v.value().to_vec()))
            }

            /// The next unused pack id.
            pub fn next_pack_id(&self) -> Result<u64> {
                Ok(self
                    .meta(NEXT_PACK)?
                    .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
                    .unwrap_or(1))
            }
        }
    };
}

/// A read-only snapshot of the index.
pub struct ReadTx<'a> {
    tx: redb::ReadTransaction,
    path: &'a Path,
}

/// A write transaction on the index.
pub struct WriteTx<'a> {
    tx: redb::WriteTransaction,
    path: &'a Path,
}

impl std::fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadTx")
    }
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteTx")
    }
}

reads!(ReadTx<'_>);
reads!(WriteTx<'_>);

impl WriteTx<'_> {
    /// Makes the transaction durable (redb fsyncs on commit).
    pub fn commit(self) -> Result<()> {
        ix!(self, self.tx.commit())
    }

    /// Records or replaces a chunk's record.
    pub fn put_chunk(&mut self, id: &ChunkId, rec: &ChunkRecord) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(CHUNKS))?;
        ix!(self, t.insert(id.as_bytes(), rec.encode().as_slice()))?;
        Ok(())
    }

    /// Drops a chunk from the index.
    pub fn remove_chunk(&mut self, id: &ChunkId) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(CHUNKS))?;
        ix!(self, t.remove(id.as_bytes()))?;
        Ok(())
    }

    /// Records a pack's state.
    pub fn put_pack(&mut self, id: PackId, rec: &PackRecord) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(PACKS))?;
        ix!(self, t.insert(id.0, encode_json(rec).as_slice()))?;
        Ok(())
    }

    /// Forgets a pack.
    pub fn remove_pack(&mut self, id: PackId) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(PACKS))?;
        ix!(self, t.remove(id.0))?;
        Ok(())
    }

    /// Records the next unused pack id.
    pub fn set_next_pack_id(&mut self, next: u64) -> Result<()> {
        self.set_meta(NEXT_PACK, &next.to_le_bytes())
    }

    /// Sets a store-wide setting.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(META))?;
        ix!(self, t.insert(key, value))?;
        Ok(())
    }

    /// Records a blob with its recipe segments and rebuild-script segments (start offset,
    /// encoded bytes).
    pub fn put_blob(
        &mut self,
        digest: &Digest,
        rec: &BlobRecord,
        segments: &[(u64, Vec<u8>)],
        script: &[(u64, Vec<u8>)],
    ) -> Result<()> {
        let key = digest.to_string();
        {
            let mut t = ix!(self, self.tx.open_table(BLOBS))?;
            ix!(self, t.insert(key.as_str(), encode_json(rec).as_slice()))?;
        }
        {
            let mut t = ix!(self, self.tx.open_table(RECIPES))?;
            for (start, bytes) in segments {
                ix!(self, t.insert((key.as_str(), *start), bytes.as_slice()))?;
            }
        }
        let mut t = ix!(self, self.tx.open_table(REBUILDS))?;
        for (start, bytes) in script {
            ix!(self, t.insert((key.as_str(), *start), bytes.as_slice()))?;
        }
        Ok(())
    }

    /// Marks a stored blob as put again or linked at `now` (see [`BlobRecord::touched`]).
    pub fn touch_blob(&mut self, digest: &Digest, now: u64) -> Result<()> {
        let Some(mut rec) = self.blob(digest)? else {
            return Ok(());
        };
        rec.touched = now;
        let key = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(BLOBS))?;
        ix!(self, t.insert(key.as_str(), encode_json(&rec).as_slice()))?;
        Ok(())
    }

    /// Removes a blob and its recipe (chunk reference counts are the caller's job).
    pub fn remove_blob(&mut self, digest: &Digest) -> Result<()> {
        let key = digest.to_string();
        {
            let mut t = ix!(self, self.tx.open_table(BLOBS))?;
            ix!(self, t.remove(key.as_str()))?;
        }
        for table in [RECIPES, REBUILDS] {
            let mut t = ix!(self, self.tx.open_table(table))?;
            let starts: Vec<u64> = {
                let mut v = Vec::new();
                for row in ix!(self, t.range((key.as_str(), 0)..=(key.as_str(), u64::MAX)))? {
                    v.push(ix!(self, row)?.0.value().1);
                }
                v
            };
            for s in starts {
                ix!(self, t.remove((key.as_str(), s)))?;
            }
        }
        let mut e = ix!(self, self.tx.open_multimap_table(EDGES))?;
        ix!(self, e.remove_all(key.as_str()))?;
        let mut m = ix!(self, self.tx.open_table(MEDIA_TYPES))?;
        ix!(self, m.remove(key.as_str()))?;
        Ok(())
    }

    /// Adds link bits for `digest` in `repo`, creating the repository entry if needed.
    pub fn add_link(
        &mut self,
        repo: &str,
        digest: &Digest,
        kind: LinkKind,
        now: u64,
    ) -> Result<()> {
        {
            let mut r = ix!(self, self.tx.open_table(REPOS))?;
            if ix!(self, r.get(repo))?.is_none() {
                ix!(self, r.insert(repo, now))?;
            }
        }
        let d = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(LINKS))?;
        let old = ix!(self, t.get((repo, d.as_str())))?.map(|v| LinkKind(v.value()));
        let new = old.unwrap_or(LinkKind(0)).union(kind);
        ix!(self, t.insert((repo, d.as_str()), new.0))?;
        Ok(())
    }

    /// Clears link bits; the link disappears when none remain. Returns whether a bit was set.
    pub fn remove_link(&mut self, repo: &str, digest: &Digest, kind: LinkKind) -> Result<bool> {
        let d = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(LINKS))?;
        let Some(old) = ix!(self, t.get((repo, d.as_str())))?.map(|v| LinkKind(v.value())) else {
            return Ok(false);
        };
        let had = old.0 & kind.0 != 0;
        let new = old.minus(kind);
        if new.0 == 0 {
            ix!(self, t.remove((repo, d.as_str())))?;
        } else {
            ix!(self, t.insert((repo, d.as_str()), new.0))?;
        }
        Ok(had)
    }

    /// Records the digests a manifest references.
    pub fn put_edges(&mut self, parent: &Digest, children: &[Digest]) -> Result<()> {
        let p = parent.to_string();
        let mut t = ix!(self, self.tx.open_multimap_table(EDGES))?;
        for c in children {
            let c = c.to_string();
            ix!(self, t.insert(p.as_str(), c.as_str()))?;
        }
        Ok(())
    }

    /// Points a tag at a digest (or deletes it with `None`), appending to its history.
    pub fn set_tag(
        &mut self,
        repo: &str,
        tag: &str,
        digest: Option<&Digest>,
        now: u64,
    ) -> Result<()> {
        {
            let mut t = ix!(self, self.tx.open_table(TAGS))?;
            match digest {
                Some(d) => {
                    let d = d.to_string();
                    ix!(self, t.insert((repo, tag), d.as_str()))?;
                }
                None => {
                    ix!(self, t.remove((repo, tag)))?;
                }
            }
        }
        let mut h = ix!(self, self.tx.open_table(TAG_HISTORY))?;
        let seq = {
            let mut range = ix!(self, h.range((repo, tag, 0)..=(repo, tag, u64::MAX)))?;
            match range.next_back() {
                Some(row) => ix!(self, row)?.0.value().2 + 1,
                None => 0,
            }
        };
        let ev = TagEvent {
            digest: digest.cloned(),
            time: now,
        };
        ix!(
            self,
            h.insert((repo, tag, seq), encode_json(&ev).as_slice())
        )?;
        Ok(())
    }

    /// Drops tag-history events older than `before` (unix seconds), except each tag's latest.
    pub fn prune_tag_history(&mut self, before: u64) -> Result<u64> {
        let mut h = ix!(self, self.tx.open_table(TAG_HISTORY))?;
        let mut doomed = Vec::new();
        for row in ix!(self, h.iter())? {
            let (k, v) = ix!(self, row)?;
            let (r, t, seq) = k.value();
            let ev: TagEvent = decode_json(self.path, "tag event", v.value())?;
            doomed.push((r.to_owned(), t.to_owned(), seq, ev.time < before));
        }
        // Keep the newest event of each tag whatever its age.
        let mut removed = 0;
        for i in 0..doomed.len() {
            let (r, t, seq, old) = &doomed[i];
            let is_latest = doomed
                .get(i + 1)
                .is_none_or(|(nr, nt, _, _)| nr != r || nt != t);
            if *old && !is_latest {
                ix!(self, h.remove((r.as_str(), t.as_str(), *seq)))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Records a referrer of `subject` in `repo` with its descriptor bytes.
    pub fn put_referrer(
        &mut self,
        repo: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<()> {
        let (s, r) = (subject.to_string(), referrer.to_string());
        let mut t = ix!(self, self.tx.open_table(REFERRERS))?;
        ix!(self, t.insert((repo, s.as_str(), r.as_str()), descriptor))?;
        Ok(())
    }

    /// Removes every referrer entry of `referrer` in `repo`, whatever its subject.
    pub fn remove_referrer_everywhere(&mut self, repo: &str, referrer: &Digest) -> Result<()> {
        let r = referrer.to_string();
        let mut t = ix!(self, self.tx.open_table(REFERRERS))?;
        let mut doomed = Vec::new();
        for row in ix!(self, t.range((repo, "", "")..))? {
            let (k, _) = ix!(self, row)?;
            let (kr, s, d) = k.value();
            if kr != repo {
                break;
            }
            if d == r {
                doomed.push(s.to_owned());
            }
        }
        for s in doomed {
            ix!(self, t.remove((repo, s.as_str(), r.as_str())))?;
        }
        Ok(())
    }

    /// Records the media type a manifest was pushed with.
    pub fn put_media_type(&mut self, digest: &Digest, media_type: &str) -> Result<()> {
        let d = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(MEDIA_TYPES))?;
        ix!(self, t.insert(d.as_str(), media_type))?;
        Ok(())
    }

    /// Stores an upload session's bytes.
    pub fn put_upload(&mut self, id: &str, bytes: &[u8]) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(UPLOADS))?;
        ix!(self, t.insert(id, bytes))?;
        Ok(())
    }

    /// Forgets an upload session.
    pub fn remove_upload(&mut self, id: &str) -> Result<bool> {
        let mut t = ix!(self, self.tx.open_table(UPLOADS))?;
        Ok(ix!(self, t.remove(id))?.is_some())
    }
}
