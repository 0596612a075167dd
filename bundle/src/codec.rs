//! Byte encoding of the bundle index (see FORMAT.md, "Index").
//!
//! ```text
//! offset size field
//!      0    8 magic "AIRLKIDX"
//!      8    4 version u32 = INDEX_FORMAT_VERSION
//!     12    4 flags u32 = 0
//!     16    8 raw_len u64      length of the body once decompressed
//!     24    8 body_len u64     length of the zstd body that follows the header
//!     32   16 check            BLAKE3(bytes 0..32 ++ body)[..16]
//!     48    . body             one zstd frame
//! ```
//! The body, decompressed, all integers little-endian, `str` = u32 length + UTF-8, `bytes` =
//! u32 length + bytes, `digest` = str of `algorithm:hex`, `n` = u32 count:
//! ```text
//! bundle_id [16]  name str  created u64  tool str
//! base u8 (0 none | 1 since: bundle_id [16] name str | 2 inventory: inventory_id [16] created u64)
//! chunk table: n, n × [32] ids strictly ascending (every chunk a blob or frame names)
//! refs:      n × (repo str, has_tag u8, [tag str], digest)
//! manifests: n × (repo str, digest, media_type str, n × child digest,
//!                 [version 2: n × absent u32, positions in the children, ascending],
//!                 has_subject u8, [subject digest, descriptor bytes])
//! blobs:     n × (digest, size u64, description bytes, n × chunk u32)
//! volume_count u32
//! volumes:   n × (number u32, n × frame (offset u64, len u32, n × chunk u32))
//! ```
//! A chunk u32 is a position in the chunk table, so a chunk id costs its 32 bytes once and
//! 4 bytes per mention: a million chunks make an index of about 40 MB.

use std::io::Read;

use airlock_store::{ChunkId, Digest};

use crate::{
    error::{Error, Result},
    index::{
        Base, BlobEntry, BundleId, BundleIndex, FrameEntry, InventoryId, ManifestEntry, RefEntry,
        VolumeEntry,
    },
    wire::{Put, Take, TakeResult},
};

/// Newest version of the index encoding, which this build reads with every older one (2: the
/// children a manifest travels without on purpose, `export --platform`). An index with no
/// such child is written as version 1, which airlocks before version 2 read.
pub const INDEX_FORMAT_VERSION: u32 = 2;
/// Magic at the start of index bytes.
pub const INDEX_MAGIC: &[u8; 8] = b"AIRLKIDX";
/// Bytes of the index header before its zstd body.
pub const INDEX_HEADER_LEN: usize = 48;
/// A decompressed index body larger than this is refused whatever its header claims
/// (about 25 million chunks).
pub const MAX_INDEX_RAW_BYTES: u64 = 1 << 30;
/// Index bytes (header and compressed body) larger than this are refused before they are read:
/// zstd's worst case for a body of [`MAX_INDEX_RAW_BYTES`] is 1/256 larger, plus a little.
pub(crate) const MAX_INDEX_BYTES: u64 =
    INDEX_HEADER_LEN as u64 + MAX_INDEX_RAW_BYTES + MAX_INDEX_RAW_BYTES / 128;
/// zstd level of the index body (its chunk table is random bytes: more effort gains nothing).
const INDEX_ZSTD_LEVEL: i32 = 3;

const _: () = assert!(INDEX_HEADER_LEN == 8 + 4 + 4 + 8 + 8 + 16);

/// Bytes one shipped chunk can add to the raw body at worst: its id in the table (32), a frame
/// of its own (offset 8, len 4, count 4, one reference 4) in a volume of its own (number 4,
/// frame count 4).
const WORST_BYTES_PER_SHIPPED_CHUNK: u64 = 32 + (8 + 4 + 4 + 4) + (4 + 4);

impl BundleIndex {
    /// Encodes the index (header and zstd body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        wrap(&encode_raw(self, true)?, version_of(self))
    }

    /// An upper bound of the encoded size of this index once the exporter has added the frames
    /// of `shipped_chunks` chunks, whatever their packing into frames and volumes (this index's
    /// own `volumes` are ignored). Reserve it in every volume before writing frames.
    pub fn encoded_len_bound(&self, shipped_chunks: u64) -> Result<u64> {
        let raw = encode_raw(self, false)?.len() as u64;
        let raw = raw.saturating_add(shipped_chunks.saturating_mul(WORST_BYTES_PER_SHIPPED_CHUNK));
        let raw = usize::try_from(raw).map_err(|_| Error::IndexTooLarge {
            what: format!("{raw} bytes"),
        })?;
        Ok(INDEX_HEADER_LEN as u64 + zstd::zstd_safe::compress_bound(raw) as u64)
    }

    /// Decodes index bytes, checking everything; hostile input gives an error, never a panic or
    /// an allocation larger than the input justifies.
    pub fn decode(bytes: &[u8]) -> Result<BundleIndex> {
        let corrupt = |what: String| Error::IndexCorrupt { what };
        let mut t = Take::new(bytes);
        let magic = t.raw(8, "index magic").map_err(corrupt)?;
        if magic != INDEX_MAGIC {
            return Err(corrupt("not a bundle index (bad magic)".into()));
        }
        let version = t.u32("index version").map_err(corrupt)?;
        if !(1..=INDEX_FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: Default::default(),
                kind: "index",
                version,
                supported: INDEX_FORMAT_VERSION,
            });
        }
        let _flags = t.u32("index flags").map_err(corrupt)?;
        let raw_len = t.u64("index raw length").map_err(corrupt)?;
        let body_len = t.u64("index body length").map_err(corrupt)?;
        let check: [u8; 16] = t.array("index check").map_err(corrupt)?;
        if body_len != t.remaining() as u64 {
            return Err(corrupt(format!(
                "header says the body has {body_len} bytes, {} follow",
                t.remaining()
            )));
        }
        let body = &bytes[INDEX_HEADER_LEN..];
        let mut h = blake3::Hasher::new();
        h.update(&bytes[..32]);
        h.update(body);
        if h.finalize().as_bytes()[..16] != check {
            return Err(corrupt("check mismatch (damaged bytes)".into()));
        }
        if raw_len > MAX_INDEX_RAW_BYTES {
            return Err(corrupt(format!(
                "body of {raw_len} bytes is over the limit of {MAX_INDEX_RAW_BYTES}"
            )));
        }
        let mut raw = Vec::new();
        zstd::stream::Decoder::new(body)
            .and_then(|d| d.take(raw_len + 1).read_to_end(&mut raw))
            .map_err(|e| corrupt(format!("body does not decompress: {e}")))?;
        if raw.len() as u64 != raw_len {
            return Err(corrupt(format!(
                "body decompresses to {} bytes, header says {raw_len}",
                raw.len()
            )));
        }
        decode_raw(&raw, version).map_err(|what| corrupt(format!("body: {what}")))
    }
}

/// The version an index is written as: the oldest that holds everything it says.
fn version_of(ix: &BundleIndex) -> u32 {
    if ix.manifests.iter().any(|m| !m.absent.is_empty()) {
        2
    } else {
        1
    }
}

/// Puts the index header before the compressed `raw` body.
fn wrap(raw: &[u8], version: u32) -> Result<Vec<u8>> {
    let body = zstd::bulk::compress(raw, INDEX_ZSTD_LEVEL).map_err(|e| Error::IndexTooLarge {
        what: format!("compressing {} bytes: {e}", raw.len()),
    })?;
    let mut out = Put(Vec::with_capacity(INDEX_HEADER_LEN + body.len()));
    out.raw(INDEX_MAGIC);
    out.u32(version);
    out.u32(0);
    out.u64(raw.len() as u64);
    out.u64(body.len() as u64);
    let mut h = blake3::Hasher::new();
    h.update(&out.0);
    h.update(&body);
    out.raw(&h.finalize().as_bytes()[..16]);
    out.raw(&body);
    Ok(out.0)
}

fn too_large(what: &str, n: usize) -> Error {
    Error::IndexTooLarge {
        what: format!("{what}: {n} is more than a u32 holds"),
    }
}

fn len32(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| too_large(what, n))
}

fn put_str(p: &mut Put, what: &str, s: &[u8]) -> Result<()> {
    len32(what, s.len())?;
    p.bytes(s);
    Ok(())
}

fn put_refs(p: &mut Put, table: &[ChunkId], chunks: &[ChunkId]) -> Result<()> {
    p.u32(len32("chunks of one entry", chunks.len())?);
    for c in chunks {
        // Every id was put in the table by encode_raw, so the search always finds it.
        let at = table.binary_search(c).unwrap_or(0);
        p.u32(at as u32);
    }
    Ok(())
}

fn encode_raw(ix: &BundleIndex, with_volumes: bool) -> Result<Vec<u8>> {
    let version = version_of(ix);
    let volumes: &[VolumeEntry] = if with_volumes { &ix.volumes } else { &[] };
    let mut table: Vec<ChunkId> = ix
        .blobs
        .iter()
        .flat_map(|b| b.chunks.iter().copied())
        .collect();
    table.extend(
        volumes
            .iter()
            .flat_map(|v| v.frames.iter().flat_map(|f| f.chunks.iter().copied())),
    );
    table.sort_unstable();
    table.dedup();
    len32("chunk table", table.len())?;

    let mut p = Put::default();
    p.raw(&ix.bundle_id.0);
    put_str(&mut p, "name", ix.name.as_bytes())?;
    p.u64(ix.created);
    put_str(&mut p, "tool", ix.tool.as_bytes())?;
    match &ix.base {
        None => p.u8(0),
        Some(Base::Since { bundle_id, name }) => {
            p.u8(1);
            p.raw(&bundle_id.0);
            put_str(&mut p, "base name", name.as_bytes())?;
        }
        Some(Base::Inventory {
            inventory_id,
            created,
        }) => {
            p.u8(2);
            p.raw(&inventory_id.0);
            p.u64(*created);
        }
    }
    p.u32(table.len() as u32);
    for c in &table {
        p.raw(c.as_bytes());
    }
    p.u32(len32("refs", ix.refs.len())?);
    for r in &ix.refs {
        put_str(&mut p, "repo", r.repo.as_bytes())?;
        match &r.tag {
            None => p.u8(0),
            Some(tag) => {
                p.u8(1);
                put_str(&mut p, "tag", tag.as_bytes())?;
            }
        }
        put_str(&mut p, "digest", r.digest.to_string().as_bytes())?;
    }
    p.u32(len32("manifests", ix.manifests.len())?);
    for m in &ix.manifests {
        put_str(&mut p, "repo", m.repo.as_bytes())?;
        put_str(&mut p, "digest", m.digest.to_string().as_bytes())?;
        put_str(&mut p, "media type", m.media_type.as_bytes())?;
        p.u32(len32("children", m.children.len())?);
        for c in &m.children {
            put_str(&mut p, "digest", c.to_string().as_bytes())?;
        }
        if version >= 2 {
            let mut at: Vec<u32> = Vec::with_capacity(m.absent.len());
            for a in &m.absent {
                let i =
                    m.children
                        .iter()
                        .position(|c| c == a)
                        .ok_or_else(|| Error::IndexTooLarge {
                            what: format!(
                                "manifest {} lists {a} as absent but not among its children",
                                m.digest
                            ),
                        })?;
                at.push(len32("absent child", i)?);
            }
            at.sort_unstable();
            at.dedup();
            p.u32(len32("absent children", at.len())?);
            for i in at {
                p.u32(i);
            }
        }
        match &m.subject {
            None => p.u8(0),
            Some((d, descriptor)) => {
                p.u8(1);
                put_str(&mut p, "digest", d.to_string().as_bytes())?;
                put_str(&mut p, "descriptor", descriptor)?;
            }
        }
    }
    p.u32(len32("blobs", ix.blobs.len())?);
    for b in &ix.blobs {
        put_str(&mut p, "digest", b.digest.to_string().as_bytes())?;
        p.u64(b.size);
        put_str(&mut p, "description", &b.description)?;
        put_refs(&mut p, &table, &b.chunks)?;
    }
    p.u32(ix.volume_count);
    p.u32(len32("volumes", volumes.len())?);
    for v in volumes {
        p.u32(v.number);
        p.u32(len32("frames", v.frames.len())?);
        for f in &v.frames {
            p.u64(f.offset);
            p.u32(f.len);
            put_refs(&mut p, &table, &f.chunks)?;
        }
    }
    Ok(p.0)
}

fn take_digest(t: &mut Take<'_>, what: &str) -> TakeResult<Digest> {
    let at = t.pos();
    let s = t.string(what)?;
    s.parse().map_err(|e| format!("{what} at offset {at}: {e}"))
}

fn take_refs(t: &mut Take<'_>, table: &[ChunkId], what: &str) -> TakeResult<Vec<ChunkId>> {
    let n = t.count(4, what)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = t.pos();
        let i = t.u32(what)? as usize;
        let id = table.get(i).ok_or_else(|| {
            format!(
                "{what} at offset {at} names chunk {i} of a table of {}",
                table.len()
            )
        })?;
        out.push(*id);
    }
    Ok(out)
}

fn decode_raw(raw: &[u8], version: u32) -> TakeResult<BundleIndex> {
    let mut t = Take::new(raw);
    let bundle_id = BundleId(t.array("bundle id")?);
    let name = t.string("name")?;
    let created = t.u64("created")?;
    let tool = t.string("tool")?;
    let at = t.pos();
    let base = match t.u8("base kind")? {
        0 => None,
        1 => Some(Base::Since {
            bundle_id: BundleId(t.array("base bundle id")?),
            name: t.string("base name")?,
        }),
        2 => Some(Base::Inventory {
            inventory_id: InventoryId(t.array("base inventory id")?),
            created: t.u64("base inventory time")?,
        }),
        k => return Err(format!("unknown base kind {k} at offset {at}")),
    };
    let n = t.count(32, "chunk table")?;
    let mut table: Vec<ChunkId> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = t.pos();
        let id = ChunkId::from_bytes(t.array("chunk id")?);
        if table.last().is_some_and(|last| *last >= id) {
            return Err(format!("chunk table out of order at offset {at}"));
        }
        table.push(id);
    }
    let n = t.count(9, "refs")?;
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let repo = t.string("ref repo")?;
        let at = t.pos();
        let tag = match t.u8("ref tag flag")? {
            0 => None,
            1 => Some(t.string("ref tag")?),
            k => return Err(format!("bad tag flag {k} at offset {at}")),
        };
        let digest = take_digest(&mut t, "ref digest")?;
        refs.push(RefEntry { repo, tag, digest });
    }
    let n = t.count(17, "manifests")?;
    let mut manifests = Vec::with_capacity(n);
    for _ in 0..n {
        let repo = t.string("manifest repo")?;
        let digest = take_digest(&mut t, "manifest digest")?;
        let media_type = t.string("media type")?;
        let k = t.count(4, "children")?;
        let mut children = Vec::with_capacity(k);
        for _ in 0..k {
            children.push(take_digest(&mut t, "child digest")?);
        }
        let mut absent = Vec::new();
        if version >= 2 {
            let k = t.count(4, "absent children")?;
            let mut last: Option<u32> = None;
            for _ in 0..k {
                let at = t.pos();
                let i = t.u32("absent child")?;
                let child = children.get(i as usize).ok_or_else(|| {
                    format!(
                        "absent child at offset {at} names child {i} of {}",
                        children.len()
                    )
                })?;
                if last.is_some_and(|l| l >= i) {
                    return Err(format!("absent children out of order at offset {at}"));
                }
                last = Some(i);
                absent.push(child.clone());
            }
        }
        let at = t.pos();
        let subject = match t.u8("subject flag")? {
            0 => None,
            1 => Some((
                take_digest(&mut t, "subject digest")?,
                t.bytes("subject descriptor")?.to_vec(),
            )),
            k => return Err(format!("bad subject flag {k} at offset {at}")),
        };
        manifests.push(ManifestEntry {
            repo,
            digest,
            media_type,
            children,
            absent,
            subject,
        });
    }
    let n = t.count(20, "blobs")?;
    let mut blobs = Vec::with_capacity(n);
    for _ in 0..n {
        blobs.push(BlobEntry {
            digest: take_digest(&mut t, "blob digest")?,
            size: t.u64("blob size")?,
            description: t.bytes("blob description")?.to_vec(),
            chunks: take_refs(&mut t, &table, "blob chunks")?,
        });
    }
    let volume_count = t.u32("volume count")?;
    let n = t.count(8, "volumes")?;
    let mut volumes: Vec<VolumeEntry> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = t.pos();
        let number = t.u32("volume number")?;
        if number == 0 || number > volume_count {
            return Err(format!(
                "volume number {number} at offset {at} is outside 1..={volume_count}"
            ));
        }
        if volumes.iter().any(|v| v.number == number) {
            return Err(format!("volume {number} listed twice (offset {at})"));
        }
        let k = t.count(16, "frames")?;
        let mut frames = Vec::with_capacity(k);
        for _ in 0..k {
            frames.push(FrameEntry {
                offset: t.u64("frame offset")?,
                len: t.u32("frame length")?,
                chunks: take_refs(&mut t, &table, "frame chunks")?,
            });
        }
        volumes.push(VolumeEntry { number, frames });
    }
    t.finish("the volumes")?;
    Ok(BundleIndex {
        bundle_id,
        name,
        created,
        tool,
        base,
        refs,
        manifests,
        blobs,
        volume_count,
        volumes,
    })
}

/// The check a volume trailer and header keep of an index: BLAKE3 of its bytes.
pub(crate) fn index_check(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(i: u32) -> ChunkId {
        ChunkId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    fn digest(i: u32) -> Digest {
        Digest::sha256(&i.to_le_bytes())
    }

    pub(crate) fn sample() -> BundleIndex {
        BundleIndex {
            bundle_id: BundleId([7; 16]),
            name: "shop-2.1".into(),
            created: 1_790_000_000,
            tool: "airlock 0.1.0".into(),
            base: Some(Base::Since {
                bundle_id: BundleId([3; 16]),
                name: "shop-2.0".into(),
            }),
            refs: vec![
                RefEntry {
                    repo: "docker.io/library/nginx".into(),
                    tag: Some("1.27".into()),
                    digest: digest(1),
                },
                RefEntry {
                    repo: "vendor/app".into(),
                    tag: None,
                    digest: digest(2),
                },
            ],
            manifests: vec![
                ManifestEntry {
                    repo: "docker.io/library/nginx".into(),
                    digest: digest(1),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    children: vec![digest(10), digest(11)],
                    absent: vec![],
                    subject: None,
                },
                ManifestEntry {
                    repo: "docker.io/library/nginx".into(),
                    digest: digest(2),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    children: vec![digest(12)],
                    absent: vec![],
                    subject: Some((digest(1), b"{\"mediaType\":\"x\"}".to_vec())),
                },
            ],
            blobs: vec![
                BlobEntry {
                    digest: digest(10),
                    size: 12345,
                    description: vec![1, 2, 3],
                    chunks: vec![id(1), id(2), id(3)],
                },
                BlobEntry {
                    digest: digest(11),
                    size: 5,
                    description: vec![],
                    chunks: vec![id(3), id(4)],
                },
            ],
            volume_count: 2,
            volumes: vec![
                VolumeEntry {
                    number: 1,
                    frames: vec![FrameEntry {
                        offset: 88,
                        len: 1000,
                        chunks: vec![id(1), id(2)],
                    }],
                },
                VolumeEntry {
                    number: 2,
                    frames: vec![FrameEntry {
                        offset: 88,
                        len: 500,
                        chunks: vec![id(3)],
                    }],
                },
            ],
        }
    }

    #[test]
    fn an_index_round_trips() {
        let ix = sample();
        assert_eq!(BundleIndex::decode(&ix.encode().unwrap()).unwrap(), ix);
        let mut other = ix.clone();
        other.base = Some(Base::Inventory {
            inventory_id: InventoryId([9; 16]),
            created: 42,
        });
        assert_eq!(
            BundleIndex::decode(&other.encode().unwrap()).unwrap(),
            other
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(BundleIndex::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(BundleIndex::decode(&b).is_err(), "flip at {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(BundleIndex::decode(&longer).is_err());
    }

    #[test]
    fn a_newer_version_is_named() {
        let mut bytes = sample().encode().unwrap();
        bytes[8] = 3;
        assert!(matches!(
            BundleIndex::decode(&bytes),
            Err(Error::UnsupportedVersion { version: 3, .. })
        ));
    }

    /// Issue 17: children left out on purpose make a version 2 index; without any, version 1
    /// is written, which earlier airlocks read.
    #[test]
    fn absent_children_round_trip_as_version_2() {
        let full = sample().encode().unwrap();
        assert_eq!(full[8..12], 1u32.to_le_bytes());
        let mut ix = sample();
        ix.manifests[0].absent = vec![digest(11)];
        let bytes = ix.encode().unwrap();
        assert_eq!(bytes[8..12], 2u32.to_le_bytes());
        assert_eq!(BundleIndex::decode(&bytes).unwrap(), ix);
        for n in 0..bytes.len() {
            assert!(BundleIndex::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        ix.manifests[0].absent = vec![digest(99)];
        assert!(ix.encode().is_err(), "an absent child must be a child");
    }

    #[test]
    fn forged_counts_and_references_are_refused_without_panicking() {
        // A body whose chunk table claims u32::MAX ids.
        let mut p = Put::default();
        p.raw(&[0; 16]);
        p.bytes(b"n");
        p.u64(0);
        p.bytes(b"t");
        p.u8(0);
        let prefix = p.0.clone();
        p.u32(u32::MAX);
        let err = BundleIndex::decode(&wrap(&p.0, 1).unwrap()).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
        // A blob naming chunk 5 of an empty table.
        let mut p = Put(prefix);
        p.u32(0); // table
        p.u32(0); // refs
        p.u32(0); // manifests
        p.u32(1); // blobs
        p.bytes(digest(1).to_string().as_bytes());
        p.u64(1);
        p.bytes(b"");
        p.u32(1);
        p.u32(5);
        p.u32(1); // volume count
        p.u32(0); // volumes
        let err = BundleIndex::decode(&wrap(&p.0, 1).unwrap()).unwrap_err();
        assert!(err.to_string().contains("names chunk 5"), "{err}");
        // A header claiming a huge raw length.
        let mut bytes = sample().encode().unwrap();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(BundleIndex::decode(&bytes).is_err());
    }

    #[test]
    fn a_million_chunks_make_an_index_of_tens_of_mb() {
        let n = 1_000_000u32;
        let ids: Vec<ChunkId> = (0..n).map(id).collect();
        let mut ix = sample();
        ix.blobs = ids
            .chunks(1000)
            .enumerate()
            .map(|(i, c)| BlobEntry {
                digest: digest(i as u32),
                size: 1 << 26,
                description: vec![0; 64],
                chunks: c.to_vec(),
            })
            .collect();
        let bound = ix.encoded_len_bound(u64::from(n)).unwrap();
        ix.volume_count = 1;
        ix.volumes = vec![VolumeEntry {
            number: 1,
            frames: ids
                .chunks(16)
                .enumerate()
                .map(|(i, c)| FrameEntry {
                    offset: i as u64 * 1_000_000,
                    len: 1_000_000,
                    chunks: c.to_vec(),
                })
                .collect(),
        }];
        let bytes = ix.encode().unwrap();
        assert!(bytes.len() < 45_000_000, "{} bytes", bytes.len());
        assert!(bytes.len() as u64 <= bound);
        assert!(bound < 100_000_000, "bound {bound}");
        assert_eq!(BundleIndex::decode(&bytes).unwrap(), ix);
    }

    fn arb_index() -> impl Strategy<Value = (BundleIndex, u64)> {
        let blob = (
            0u32..50,
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..20),
            prop::collection::vec(0u32..40, 0..10),
        )
            .prop_map(|(d, size, description, c)| BlobEntry {
                digest: digest(d),
                size,
                description,
                chunks: c.into_iter().map(id).collect(),
            });
        let manifest = (
            ".*",
            0u32..50,
            "[a-z/.+]*",
            prop::collection::vec(0u32..50, 0..4),
            prop::option::of((0u32..50, prop::collection::vec(any::<u8>(), 0..30))),
            any::<u8>(),
        )
            .prop_map(|(repo, d, media_type, children, subject, mask)| {
                let children: Vec<Digest> = children.into_iter().map(digest).collect();
                // Absent children as a decoder returns them: each once, in children order.
                let mut absent: Vec<Digest> = Vec::new();
                for (i, c) in children.iter().enumerate() {
                    if mask & (1 << i) != 0 && children.iter().position(|x| x == c) == Some(i) {
                        absent.push(c.clone());
                    }
                }
                ManifestEntry {
                    repo,
                    digest: digest(d),
                    media_type,
                    children,
                    absent,
                    subject: subject.map(|(s, b)| (digest(s), b)),
                }
            });
        let reference =
            (".*", prop::option::of(".*"), 0u32..50).prop_map(|(repo, tag, d)| RefEntry {
                repo,
                tag,
                digest: digest(d),
            });
        // Frames: (volume, shipped chunk ids) grouped however the strategy likes.
        let frames = prop::collection::vec(
            (
                1u32..5,
                any::<u64>(),
                any::<u32>(),
                prop::collection::vec(40u32..80, 1..6),
            ),
            0..12,
        );
        (
            any::<[u8; 16]>(),
            ".*",
            any::<u64>(),
            prop::collection::vec(reference, 0..4),
            prop::collection::vec(manifest, 0..4),
            prop::collection::vec(blob, 0..6),
            frames,
        )
            .prop_map(|(b, name, created, refs, manifests, blobs, frames)| {
                let mut volumes: Vec<VolumeEntry> = Vec::new();
                let mut shipped = 0u64;
                for (v, offset, len, c) in frames {
                    shipped += c.len() as u64;
                    let f = FrameEntry {
                        offset,
                        len,
                        chunks: c.into_iter().map(id).collect(),
                    };
                    match volumes.iter_mut().find(|e| e.number == v) {
                        Some(e) => e.frames.push(f),
                        None => volumes.push(VolumeEntry {
                            number: v,
                            frames: vec![f],
                        }),
                    }
                }
                let ix = BundleIndex {
                    bundle_id: BundleId(b),
                    name,
                    created,
                    tool: "airlock test".into(),
                    base: None,
                    refs,
                    manifests,
                    blobs,
                    volume_count: 5,
                    volumes,
                };
                (ix, shipped)
            })
    }

    proptest! {
        #[test]
        fn any_index_round_trips_within_its_bound((ix, shipped) in arb_index()) {
            let bytes = ix.encode().unwrap();
            prop_assert_eq!(BundleIndex::decode(&bytes).unwrap(), ix.clone());
            prop_assert!(bytes.len() as u64 <= ix.encoded_len_bound(shipped).unwrap());
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = BundleIndex::decode(&bytes);
            let mut framed = INDEX_MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = BundleIndex::decode(&framed);
        }

        #[test]
        fn garbage_bodies_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
            for version in 1..=INDEX_FORMAT_VERSION {
                let _ = BundleIndex::decode(&wrap(&raw, version).unwrap());
            }
        }
    }
}
