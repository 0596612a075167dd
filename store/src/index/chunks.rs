//! The chunk table opened once for a run of lookups or updates. A put looks up and counts
//! every chunk of its blob; opening the table for each costs more than the lookup itself.

use std::path::Path;

use airlock_chunker::ChunkId;
use redb::ReadableTable;

use super::*;

/// The chunk table of a read transaction.
pub struct ChunkTable<'a> {
    t: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
    path: &'a Path,
}

/// The chunk table of a write transaction, for as long as it is borrowed.
pub struct ChunkTableMut<'t> {
    t: redb::Table<'t, [u8; 32], &'static [u8]>,
    path: &'t Path,
}

impl ReadTx<'_> {
    /// The chunk table, for many lookups.
    pub fn chunk_table(&self) -> Result<ChunkTable<'_>> {
        Ok(ChunkTable {
            t: ix!(self, self.tx.open_table(CHUNKS))?,
            path: self.path,
        })
    }
}

impl<'a> WriteTx<'a> {
    /// The chunk table, for many lookups and updates in this transaction.
    pub fn chunk_table_mut(&mut self) -> Result<ChunkTableMut<'_>> {
        let path: &Path = self.path;
        Ok(ChunkTableMut {
            t: self.tx.open_table(CHUNKS).map_err(|e| err(path)(&e))?,
            path,
        })
    }
}

/// A chunk's record in either kind of chunk table.
pub(super) fn get_chunk(
    t: &impl ReadableTable<[u8; 32], &'static [u8]>,
    path: &Path,
    id: &ChunkId,
) -> Result<Option<ChunkRecord>> {
    match t.get(id.as_bytes()).map_err(|e| err(path)(&e))? {
        Some(v) => Ok(Some(decode_chunk(path, id, v.value())?)),
        None => Ok(None),
    }
}

impl ChunkTable<'_> {
    /// The record of a chunk, if indexed.
    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkRecord>> {
        get_chunk(&self.t, self.path, id)
    }
}

impl ChunkTableMut<'_> {
    /// The record of a chunk, if indexed (or written earlier in this transaction).
    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkRecord>> {
        get_chunk(&self.t, self.path, id)
    }

    /// Records or replaces a chunk's record and returns the one it replaced.
    pub fn replace(&mut self, id: &ChunkId, rec: &ChunkRecord) -> Result<Option<ChunkRecord>> {
        let path = self.path;
        let old = self
            .t
            .insert(id.as_bytes(), rec.encode().as_slice())
            .map_err(|e| err(path)(&e))?;
        match old {
            Some(v) => Ok(Some(decode_chunk(path, id, v.value())?)),
            None => Ok(None),
        }
    }

    /// Records or replaces a chunk's record.
    pub fn put(&mut self, id: &ChunkId, rec: &ChunkRecord) -> Result<()> {
        let path = self.path;
        self.t
            .insert(id.as_bytes(), rec.encode().as_slice())
            .map_err(|e| err(path)(&e))?;
        Ok(())
    }
}
