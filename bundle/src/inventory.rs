//! Inventories: what a site's store holds (`airlock inventory --out FILE`), so that a vendor's
//! `export --have FILE` ships only the chunks the site lacks.
//!
//! ```text
//! offset size field
//!      0    8 magic "AIRLKINV"
//!      8    4 version u32 = INVENTORY_FORMAT_VERSION
//!     12    4 flags u32 = 0
//!     16    8 created u64            seconds since the Unix epoch
//!     24    4 format_len u32         then format_len bytes of UTF-8: the store's format
//!      .    8 chunk_count u64        then chunk_count × 32-byte chunk ids, strictly ascending
//!      .    4 blob_count u32         then blob_count × (u32 length + "algorithm:hex"),
//!                                    strictly ascending by (algorithm, hex)
//!      .   32 check                  BLAKE3 of every byte before it
//! ```
//! A million chunks take 32 MB. The inventory's id is the first 16 bytes of its check.

use std::path::Path;

use airlock_store::{ChunkId, Digest};

use crate::{
    error::{Error, Result, io_error},
    index::InventoryId,
    wire::{Put, Take, write_atomically},
};

/// Version of the inventory file this build writes and reads.
pub const INVENTORY_FORMAT_VERSION: u32 = 1;
pub(crate) const INVENTORY_MAGIC: &[u8; 8] = b"AIRLKINV";
const CHECK_LEN: usize = 32;
/// Fixed bytes of an inventory: magic, version, flags, created, the three counts, the check.
const FIXED_LEN: usize = 8 + 4 + 4 + 8 + 4 + 8 + 4 + CHECK_LEN;
/// An inventory file larger than this is refused before it is read (about 130 million chunks).
const MAX_INVENTORY_BYTES: u64 = 4 << 30;

const _: () = assert!(FIXED_LEN == 72);
const _: () = assert!(ChunkId::LEN == 32);

/// The chunks and blobs a site's store holds, sorted for binary search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    format: String,
    created: u64,
    chunks: Vec<ChunkId>,
    blobs: Vec<Digest>,
    id: InventoryId,
}

/// Collects an inventory's content; [`InventoryBuilder::build`] sorts it.
#[derive(Debug)]
pub struct InventoryBuilder {
    format: String,
    created: u64,
    chunks: Vec<ChunkId>,
    blobs: Vec<Digest>,
}

impl InventoryBuilder {
    /// Sets when the inventory was taken (seconds since the Unix epoch; 0 by default).
    pub fn created(mut self, unix_seconds: u64) -> Self {
        self.created = unix_seconds;
        self
    }

    /// Adds one chunk the site has.
    pub fn add_chunk(&mut self, id: ChunkId) -> &mut Self {
        self.chunks.push(id);
        self
    }

    /// Adds chunks the site has.
    pub fn add_chunks(&mut self, ids: impl IntoIterator<Item = ChunkId>) -> &mut Self {
        self.chunks.extend(ids);
        self
    }

    /// Adds one blob the site has.
    pub fn add_blob(&mut self, digest: Digest) -> &mut Self {
        self.blobs.push(digest);
        self
    }

    /// Sorts and deduplicates the content and computes the inventory's id.
    pub fn build(mut self) -> Inventory {
        self.chunks.sort_unstable();
        self.chunks.dedup();
        self.blobs.sort();
        self.blobs.dedup();
        let mut inv = Inventory {
            format: self.format,
            created: self.created,
            chunks: self.chunks,
            blobs: self.blobs,
            id: InventoryId([0; 16]),
        };
        let bytes = inv.encode();
        inv.id = id_of(&bytes);
        inv
    }
}

fn id_of(encoded: &[u8]) -> InventoryId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&encoded[encoded.len() - CHECK_LEN..][..16]);
    InventoryId(id)
}

impl Inventory {
    /// Starts an inventory of a store whose format is described by `store_format` (chunker
    /// parameters and the like: a delta is only useful between stores that cut alike).
    pub fn builder(store_format: impl Into<String>) -> InventoryBuilder {
        InventoryBuilder {
            format: store_format.into(),
            created: 0,
            chunks: Vec::new(),
            blobs: Vec::new(),
        }
    }

    /// The inventory's id: the first 16 bytes of the BLAKE3 of its content.
    pub fn id(&self) -> InventoryId {
        self.id
    }

    /// The store format string given to [`Inventory::builder`].
    pub fn store_format(&self) -> &str {
        &self.format
    }

    /// When it was taken, seconds since the Unix epoch.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Whether the site has chunk `id`.
    pub fn has_chunk(&self, id: &ChunkId) -> bool {
        self.chunks.binary_search(id).is_ok()
    }

    /// Whether the site has blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.binary_search(digest).is_ok()
    }

    /// The chunks, ascending.
    pub fn chunks(&self) -> &[ChunkId] {
        &self.chunks
    }

    /// The blobs, ascending.
    pub fn blobs(&self) -> &[Digest] {
        &self.blobs
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let blob_bytes: usize = self.blobs.iter().map(|d| 4 + d.to_string().len()).sum();
        let mut p = Put(Vec::with_capacity(
            FIXED_LEN + self.format.len() + self.chunks.len() * 32 + blob_bytes,
        ));
        p.raw(INVENTORY_MAGIC);
        p.u32(INVENTORY_FORMAT_VERSION);
        p.u32(0);
        p.u64(self.created);
        // Store formats are short strings; a longer one is cut rather than mis-encoded.
        let format = &self.format.as_bytes()[..self.format.len().min(u32::MAX as usize)];
        p.bytes(format);
        p.u64(self.chunks.len() as u64);
        for c in &self.chunks {
            p.raw(c.as_bytes());
        }
        p.u32(self.blobs.len().min(u32::MAX as usize) as u32);
        for d in self.blobs.iter().take(u32::MAX as usize) {
            p.bytes(d.to_string().as_bytes());
        }
        let check = *blake3::hash(&p.0).as_bytes();
        p.raw(&check);
        p.0
    }

    /// Decodes the bytes of an inventory file (`path` is named in errors); hostile input gives
    /// an error, never a panic or an allocation larger than the input.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Inventory> {
        let corrupt = |what: String| Error::InventoryCorrupt {
            path: path.to_owned(),
            what,
        };
        if bytes.len() < 8 || &bytes[..8] != INVENTORY_MAGIC {
            return Err(corrupt("not an airlock inventory (bad magic)".into()));
        }
        if bytes.len() < FIXED_LEN {
            return Err(corrupt(format!("truncated at {} bytes", bytes.len())));
        }
        let mut t = Take::new(bytes);
        let fields = (|| -> std::result::Result<_, String> {
            t.raw(8, "magic")?;
            Ok((t.u32("version")?, t.u32("flags")?))
        })();
        let (version, _flags) = fields.map_err(corrupt)?;
        if version != INVENTORY_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_owned(),
                kind: "inventory",
                version,
                supported: INVENTORY_FORMAT_VERSION,
            });
        }
        let (content, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if blake3::hash(content).as_bytes() != check {
            return Err(corrupt("check mismatch (damaged or truncated)".into()));
        }
        let mut t = Take::new(content);
        let parsed = (|| -> std::result::Result<_, String> {
            t.raw(16, "magic, version and flags")?;
            let created = t.u64("created")?;
            let format = t.string("store format")?;
            let at = t.pos();
            let n = t.u64("chunk count")?;
            if n > (t.remaining() / 32) as u64 {
                return Err(format!("chunk count {n} at offset {at} exceeds the file"));
            }
            let mut chunks: Vec<ChunkId> = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let at = t.pos();
                let id = ChunkId::from_bytes(t.array("chunk id")?);
                if chunks.last().is_some_and(|last| *last >= id) {
                    return Err(format!("chunk ids out of order at offset {at}"));
                }
                chunks.push(id);
            }
            let n = t.count(4, "blob count")?;
            let mut blobs: Vec<Digest> = Vec::with_capacity(n);
            for _ in 0..n {
                let at = t.pos();
                let s = t.string("blob digest")?;
                let d: Digest = s
                    .parse()
                    .map_err(|e| format!("blob digest at offset {at}: {e}"))?;
                if blobs.last().is_some_and(|last| *last >= d) {
                    return Err(format!("blob digests out of order at offset {at}"));
                }
                blobs.push(d);
            }
            t.finish("the blobs")?;
            Ok((created, format, chunks, blobs))
        })();
        let (created, format, chunks, blobs) = parsed.map_err(corrupt)?;
        Ok(Inventory {
            format,
            created,
            chunks,
            blobs,
            id: id_of(bytes),
        })
    }

    /// Writes the inventory to `path`: a temp file, fsync, rename; never half a file.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomically(path, &self.encode())
    }

    /// Reads and checks an inventory file.
    pub fn read(path: &Path) -> Result<Inventory> {
        let len = std::fs::metadata(path).map_err(io_error(path))?.len();
        if len > MAX_INVENTORY_BYTES {
            return Err(Error::InventoryCorrupt {
                path: path.to_owned(),
                what: format!("{len} bytes is over the limit of {MAX_INVENTORY_BYTES}"),
            });
        }
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        Inventory::decode(&bytes, path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(i: u32) -> ChunkId {
        ChunkId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    fn sample() -> Inventory {
        let mut b = Inventory::builder("fastcdc 64K/256K/1M").created(1_790_000_000);
        b.add_chunks((0..100).rev().map(id)).add_chunk(id(5));
        b.add_blob(Digest::sha256(b"x"))
            .add_blob(Digest::sha256(b"y"));
        b.build()
    }

    #[test]
    fn an_inventory_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.inventory");
        let inv = sample();
        inv.write(&path).unwrap();
        let back = Inventory::read(&path).unwrap();
        assert_eq!(back, inv);
        assert_eq!(back.id(), inv.id());
        assert_eq!(back.chunks().len(), 100);
        assert!(back.has_chunk(&id(42)));
        assert!(!back.has_chunk(&id(100)));
        assert!(back.has_blob(&Digest::sha256(b"y")));
        assert!(!back.has_blob(&Digest::sha256(b"z")));
        assert_eq!(back.store_format(), "fastcdc 64K/256K/1M");
        assert_eq!(back.created(), 1_790_000_000);
        assert!(!dir.path().join("site.inventory.partial").exists());
    }

    #[test]
    fn ids_differ_with_content() {
        let mut b = Inventory::builder("f");
        b.add_chunk(id(1));
        let one = b.build();
        assert_ne!(one.id(), sample().id());
        assert_eq!(
            Inventory::builder("f").build().id(),
            Inventory::builder("f").build().id()
        );
    }

    #[test]
    fn every_truncation_and_flipped_byte_is_an_error() {
        let bytes = sample().encode();
        let p = Path::new("x");
        for n in 0..bytes.len() {
            assert!(Inventory::decode(&bytes[..n], p).is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Inventory::decode(&b, p).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn forged_counts_are_refused() {
        // A chunk count far beyond the file, with a valid check.
        let mut p = Put::default();
        p.raw(INVENTORY_MAGIC);
        p.u32(INVENTORY_FORMAT_VERSION);
        p.u32(0);
        p.u64(0);
        p.bytes(b"f");
        p.u64(u64::MAX);
        p.u32(0);
        let check = *blake3::hash(&p.0).as_bytes();
        p.raw(&check);
        let err = Inventory::decode(&p.0, Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("exceeds the file"), "{err}");
    }

    #[test]
    fn a_million_chunks_take_32_mb() {
        let mut b = Inventory::builder("f");
        b.add_chunks((0..1_000_000).map(id));
        let bytes = b.build().encode();
        assert!(bytes.len() < 32_100_000, "{}", bytes.len());
    }

    proptest! {
        #[test]
        fn any_inventory_round_trips(
            format in ".*",
            created in any::<u64>(),
            chunks in prop::collection::vec(any::<[u8; 32]>(), 0..50),
            blobs in prop::collection::vec(any::<u32>(), 0..20),
        ) {
            let mut b = Inventory::builder(format).created(created);
            b.add_chunks(chunks.iter().map(|c| ChunkId::from_bytes(*c)));
            for i in &blobs {
                b.add_blob(Digest::sha256(&i.to_le_bytes()));
            }
            let inv = b.build();
            let back = Inventory::decode(&inv.encode(), Path::new("x")).unwrap();
            prop_assert_eq!(back.id(), inv.id());
            prop_assert_eq!(back, inv);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut b = INVENTORY_MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            let _ = Inventory::decode(&b, Path::new("x"));
        }
    }
}
