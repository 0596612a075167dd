//! The bundle index: what a bundle carries (refs, manifests, blobs and the chunks each needs)
//! and where every frame lies (volume, offset, chunks). Its byte encoding is in `codec`;
//! this module holds the types, the standalone index file and the questions an importer asks
//! ("which volumes does this blob need").

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    io::Read,
    path::Path,
    str::FromStr,
};

use airlock_store::{ChunkId, Digest};

use crate::{
    codec::MAX_INDEX_BYTES,
    error::{Error, Result, io_error},
    wire,
};

/// Identity of a bundle: 16 random bytes, printed as 32 hex digits; every volume carries it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId(pub [u8; 16]);

impl BundleId {
    /// A fresh random id for a new bundle.
    pub fn random() -> BundleId {
        BundleId(rand::random())
    }
}

/// Identity of an inventory: the first 16 bytes of the BLAKE3 of its content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InventoryId(pub [u8; 16]);

macro_rules! hex_id {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($t))
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                let invalid = || Error::InvalidId { text: s.to_owned() };
                if s.len() != 32 || s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(invalid());
                }
                let mut out = [0u8; 16];
                hex::decode_to_slice(s, &mut out).map_err(|_| invalid())?;
                Ok($t(out))
            }
        }
    };
}
hex_id!(BundleId);
hex_id!(InventoryId);

/// Everything a bundle says about itself; the same in every volume and in `NAME.index.airlock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleIndex {
    /// The bundle's id, also in every volume header.
    pub bundle_id: BundleId,
    /// The bundle's name (the `NAME` of its files).
    pub name: String,
    /// When it was exported, seconds since the Unix epoch.
    pub created: u64,
    /// What wrote it, e.g. "airlock 0.1.0".
    pub tool: String,
    /// What a delta bundle was made against; `None` for a full bundle.
    pub base: Option<Base>,
    /// What was exported, as asked.
    pub refs: Vec<RefEntry>,
    /// Every manifest, children listed before their parents.
    pub manifests: Vec<ManifestEntry>,
    /// Every blob the manifests reference, with the chunks it is made of.
    pub blobs: Vec<BlobEntry>,
    /// How many volumes the bundle has.
    pub volume_count: u32,
    /// The frames of each volume.
    pub volumes: Vec<VolumeEntry>,
}

/// What a delta bundle was made against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// `export --since`: an earlier bundle, by its index.
    Since {
        /// The earlier bundle's id.
        bundle_id: BundleId,
        /// The earlier bundle's name.
        name: String,
    },
    /// `export --have`: an inventory of the site's store.
    Inventory {
        /// The inventory's id.
        inventory_id: InventoryId,
        /// When the inventory was taken, seconds since the Unix epoch.
        created: u64,
    },
}

/// One reference that was exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefEntry {
    /// Repository name.
    pub repo: String,
    /// Tag, when the reference had one.
    pub tag: Option<String>,
    /// The manifest it names.
    pub digest: Digest,
}

/// One manifest (image manifest, index, artifact) of the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Repository it is linked in.
    pub repo: String,
    /// Its digest (its bytes are a blob of the bundle).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Manifests and blobs it references.
    pub children: Vec<Digest>,
    /// Those of `children` it travels without on purpose (platforms `export --platform` left
    /// out, with everything only they reach), in the order of `children`; the site records
    /// them as absent, not missing.
    pub absent: Vec<Digest>,
    /// Its subject (referrers): the subject's digest and this manifest's descriptor bytes.
    pub subject: Option<(Digest, Vec<u8>)>,
}

/// One blob of the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its OCI digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The store's description of how to rebuild it from chunks (opaque here).
    pub description: Vec<u8>,
    /// The distinct chunks it needs, in order of first use.
    pub chunks: Vec<ChunkId>,
}

/// The frames of one volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeEntry {
    /// Volume number, from 1.
    pub number: u32,
    /// Its frames in file order.
    pub frames: Vec<FrameEntry>,
}

/// One frame of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameEntry {
    /// Offset of the frame in the volume file.
    pub offset: u64,
    /// Total bytes of the frame.
    pub len: u32,
    /// The chunks it holds, in order.
    pub chunks: Vec<ChunkId>,
}

/// Where one chunk lies in a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Volume number.
    pub volume: u32,
    /// Offset of the frame in the volume.
    pub offset: u64,
    /// Total bytes of the frame.
    pub len: u32,
}

impl BundleIndex {
    /// Where each shipped chunk lies (the first frame holding it when several do).
    pub fn locate_chunks(&self) -> HashMap<ChunkId, FrameRef> {
        let mut out = HashMap::new();
        for v in &self.volumes {
            for f in &v.frames {
                let at = FrameRef {
                    volume: v.number,
                    offset: f.offset,
                    len: f.len,
                };
                for id in &f.chunks {
                    out.entry(*id).or_insert(at);
                }
            }
        }
        out
    }

    /// The volumes holding any of `chunks` (chunks the bundle does not ship are ignored).
    pub fn volumes_holding<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a ChunkId>,
    ) -> BTreeSet<u32> {
        let wanted: std::collections::HashSet<&ChunkId> = chunks.into_iter().collect();
        let mut out = BTreeSet::new();
        for v in &self.volumes {
            if v.frames
                .iter()
                .any(|f| f.chunks.iter().any(|c| wanted.contains(c)))
            {
                out.insert(v.number);
            }
        }
        out
    }

    /// For each blob, the volumes it needs chunks from (empty for a blob whose chunks the
    /// bundle does not ship: a delta's base has them); names the images a missing volume hurts.
    pub fn volumes_by_blob(&self) -> BTreeMap<Digest, BTreeSet<u32>> {
        let located = self.locate_chunks();
        self.blobs
            .iter()
            .map(|b| {
                let vols = b
                    .chunks
                    .iter()
                    .filter_map(|c| located.get(c).map(|r| r.volume))
                    .collect();
                (b.digest.clone(), vols)
            })
            .collect()
    }

    /// The exported references that need any of `volumes` (their manifests, children and
    /// blobs, recursively): the images a missing or damaged volume affects.
    pub fn refs_needing(&self, volumes: &BTreeSet<u32>) -> Vec<&RefEntry> {
        let by_blob = self.volumes_by_blob();
        let children: HashMap<&Digest, &[Digest]> = self
            .manifests
            .iter()
            .map(|m| (&m.digest, &m.children[..]))
            .collect();
        let hit = |d: &Digest| by_blob.get(d).is_some_and(|v| !v.is_disjoint(volumes));
        self.refs
            .iter()
            .filter(|r| {
                let mut seen = std::collections::HashSet::new();
                let mut todo = vec![&r.digest];
                while let Some(d) = todo.pop() {
                    if !seen.insert(d) {
                        continue;
                    }
                    if hit(d) {
                        return true;
                    }
                    todo.extend(children.get(d).into_iter().flat_map(|c| c.iter()));
                }
                false
            })
            .collect()
    }

    /// Writes the encoded index to `path` (`NAME.index.airlock`) atomically.
    pub fn write_file(&self, path: &Path) -> Result<()> {
        wire::write_atomically(path, &self.encode()?)
    }

    /// Reads and decodes an index file written by [`BundleIndex::write_file`]; a file larger
    /// than any index can be is refused without reading it whole.
    pub fn read_file(path: &Path) -> Result<BundleIndex> {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let mut bytes = Vec::new();
        if len <= MAX_INDEX_BYTES {
            // Bounded again: the file may grow while it is read.
            file.take(MAX_INDEX_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(io_error(path))?;
        }
        if len > MAX_INDEX_BYTES || bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(Error::IndexCorrupt {
                what: format!(
                    "{}: larger than the limit of {MAX_INDEX_BYTES} bytes of an index",
                    path.display()
                ),
            });
        }
        BundleIndex::decode(&bytes).map_err(|e| match e {
            Error::IndexCorrupt { what } => Error::IndexCorrupt {
                what: format!("{}: {what}", path.display()),
            },
            Error::UnsupportedVersion {
                kind,
                version,
                supported,
                ..
            } => Error::UnsupportedVersion {
                path: path.to_owned(),
                kind,
                version,
                supported,
            },
            other => other,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn id(i: u8) -> ChunkId {
        ChunkId::from_bytes([i; 32])
    }

    fn index() -> BundleIndex {
        BundleIndex {
            bundle_id: BundleId([1; 16]),
            name: "app".into(),
            created: 0,
            tool: "airlock test".into(),
            base: None,
            refs: vec![],
            manifests: vec![],
            blobs: vec![
                BlobEntry {
                    digest: Digest::sha256(b"a"),
                    size: 1,
                    description: vec![],
                    chunks: vec![id(1), id(2)],
                },
                BlobEntry {
                    digest: Digest::sha256(b"b"),
                    size: 1,
                    description: vec![],
                    chunks: vec![id(3), id(9)],
                },
            ],
            volume_count: 2,
            volumes: vec![
                VolumeEntry {
                    number: 1,
                    frames: vec![FrameEntry {
                        offset: 88,
                        len: 100,
                        chunks: vec![id(1)],
                    }],
                },
                VolumeEntry {
                    number: 2,
                    frames: vec![FrameEntry {
                        offset: 88,
                        len: 100,
                        chunks: vec![id(2), id(3)],
                    }],
                },
            ],
        }
    }

    #[test]
    fn blobs_name_the_volumes_they_need() {
        let ix = index();
        let by_blob = ix.volumes_by_blob();
        assert_eq!(by_blob[&Digest::sha256(b"a")], BTreeSet::from([1, 2]));
        assert_eq!(by_blob[&Digest::sha256(b"b")], BTreeSet::from([2]));
        assert_eq!(ix.volumes_holding([&id(9)]), BTreeSet::new());
        assert_eq!(ix.volumes_holding([&id(1), &id(3)]), BTreeSet::from([1, 2]));
        assert_eq!(ix.locate_chunks()[&id(3)].volume, 2);
    }

    #[test]
    fn a_missing_volume_names_the_refs_it_hurts() {
        let mut ix = index();
        let (image, config) = (Digest::sha256(b"image"), Digest::sha256(b"b"));
        ix.manifests.push(ManifestEntry {
            repo: "app".into(),
            digest: image.clone(),
            media_type: "m".into(),
            children: vec![config],
            absent: vec![],
            subject: None,
        });
        ix.refs = vec![
            RefEntry {
                repo: "app".into(),
                tag: Some("1".into()),
                digest: image,
            },
            RefEntry {
                repo: "other".into(),
                tag: None,
                digest: Digest::sha256(b"a"),
            },
        ];
        let names = |v: u32| -> Vec<String> {
            ix.refs_needing(&BTreeSet::from([v]))
                .iter()
                .map(|r| r.repo.clone())
                .collect()
        };
        assert_eq!(names(1), vec!["other"]);
        assert_eq!(names(2), vec!["app", "other"]);
        assert!(names(3).is_empty());
    }

    #[test]
    fn ids_print_and_parse_as_hex() {
        let b = BundleId::random();
        assert_eq!(b.to_string().parse::<BundleId>().unwrap(), b);
        assert!("ABCD".parse::<BundleId>().is_err());
        assert!("zz".repeat(16).parse::<InventoryId>().is_err());
    }
}
