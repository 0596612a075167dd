//! The redb index: the only module that imports redb.
//!
//! Tables (keys -> values):
//! - `meta`: name -> bytes (store-wide settings, the next pack id)
//! - `chunks`: chunk id -> [`ChunkRecord`] (location in a pack, reference count)
//! - `packs`: pack id -> [`PackRecord`] (committed length, sealed)
//! - `blobs`: digest -> [`BlobRecord`] (size, kind, how it was cut)
//! - `staged`: digest -> [`StagedRecord`] (a blob received whole, its bytes in a file of
//!   `staged/` until the ingest cuts it; added with store format 3, absent from older indexes)
//! - `recipes`: (digest, logical start offset) -> one encoded recipe segment (of the content:
//!   for a `Deflate` blob, offsets into its decompressed payload)
//! - `rebuilds`: (digest, output start offset) -> one encoded script segment (`Deflate`
//!   blobs only; `SCRIPTS` in the code, the table keeps the name it was created with)
//! - `repos`: repository -> creation time
//! - `links`: (repository, digest) -> [`LinkKind`] bits
//! - `tags`: (repository, tag) -> digest; `tag_history`: (repository, tag, seq) -> [`TagEvent`]
//! - `edges`: manifest digest -> digests it references (multimap)
//! - `referrers`: (repository, subject, referrer) -> opaque descriptor bytes
//! - `uploads`: upload id -> opaque session bytes
//! - `media_types`: manifest digest -> the media type it was pushed with
//! - `absent`: manifest digest -> children it was linked without on purpose (platforms not
//!   chosen by `--platform`, non-distributable layers; multimap; added with store format 4)
//! - `app_events`: (application repository, seq) -> [`crate::AppEvent`] (versions added or
//!   imported and made current; added with store format 4, absent from older indexes)

//!
//! Files: `records` holds the record types and their encodings, `reads` the lookups both
//! transaction kinds share, `writes` the changes a write transaction makes, `chunks` the chunk
//! table opened once for many lookups.

use std::path::{Path, PathBuf};

use airlock_chunker::ChunkId;
use redb::{
    Database, MultimapTableDefinition, ReadOnlyDatabase, ReadableDatabase, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::{Access, Error, Result};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHUNKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("chunks");
const PACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("packs");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const STAGED: TableDefinition<&str, &[u8]> = TableDefinition::new("staged");
const RECIPES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recipes");
const SCRIPTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("rebuilds");
const REPOS: TableDefinition<&str, u64> = TableDefinition::new("repos");
const LINKS: TableDefinition<(&str, &str), u8> = TableDefinition::new("links");
const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tags");
const TAG_HISTORY: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("tag_history");
const EDGES: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("edges");
const REFERRERS: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("referrers");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const MEDIA_TYPES: TableDefinition<&str, &str> = TableDefinition::new("media_types");
const ABSENT: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("absent");
const APP_EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("app_events");

const NEXT_PACK: &str = "next_pack";

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
                // Left by a writer that did not close (a crash): redb must repair its
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
            ix!(index, tx.open_table(STAGED))?;
            ix!(index, tx.open_table(RECIPES))?;
            ix!(index, tx.open_table(SCRIPTS))?;
            ix!(index, tx.open_table(REPOS))?;
            ix!(index, tx.open_table(LINKS))?;
            ix!(index, tx.open_table(TAGS))?;
            ix!(index, tx.open_table(TAG_HISTORY))?;
            ix!(index, tx.open_multimap_table(EDGES))?;
            ix!(index, tx.open_table(REFERRERS))?;
            ix!(index, tx.open_table(UPLOADS))?;
            ix!(index, tx.open_table(MEDIA_TYPES))?;
            ix!(index, tx.open_multimap_table(ABSENT))?;
            ix!(index, tx.open_table(APP_EVENTS))?;
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

mod chunks;
mod reads;
mod records;
mod writes;

/// Which of a blob's two lists of segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentList {
    /// Its content recipe, keyed by content offset.
    Recipe,
    /// Its script (`Deflate` blobs only), keyed by output offset.
    Script,
}

impl SegmentList {
    fn table(self) -> TableDefinition<'static, (&'static str, u64), &'static [u8]> {
        match self {
            SegmentList::Recipe => RECIPES,
            SegmentList::Script => SCRIPTS,
        }
    }
}

/// Which segment of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentAt {
    /// The one covering this offset (the last that starts at or before it).
    Covering(u64),
    /// The first that starts after this start (`None`: the first of all).
    After(Option<u64>),
}

pub use self::records::{
    BlobRecord, ChunkRecord, CutLayout, LinkKind, PackRecord, RecipeKind, StagedRecord, TagEvent,
};
