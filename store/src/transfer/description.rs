//! [`BlobDescription`]: everything a store needs to recreate a blob except its chunks (its
//! record, its recipe segments and its script), written and parsed. Byte layout,
//! [`DESCRIPTION_FORMAT_VERSION`] 3 (integers little-endian; segments as in `recipe` and
//! `script`):
//!
//! ```text
//! description := "ABLD" version:u32 meta_len:u32 meta{meta_len}
//!                n_recipe:u32 segment{n_recipe} n_script:u32 segment{n_script}
//! segment     := start:u64 len:u32 bytes{len}
//! meta        := JSON {digest, size, kind, layout, encoding, opaque, rebuild_bytes, chunks,
//!                      inline_bytes, preflate}
//! ```
//!
//! `preflate` (version 2) names the preflate-rs version whose correction data the script holds
//! (`Deflate` blobs): a store rebuilds a described blob only with that version, and says so
//! when it has another. Version 1 had no `preflate` and is still read: every airlock that
//! wrote it held preflate-rs 0.7 data only ([`LEGACY_PREFLATE_VERSION`]). Version 3 has version
//! 2's layout and is written only for a blob whose script holds checkpoints (script format 3,
//! issue 14), which an airlock reading versions up to 2 would take for damage: it names the
//! version instead. Every other description is still written as version 2.
//!
//! Parsing checks every length against the bytes present and the segment count against
//! [`MAX_SEGMENTS`], then decodes every segment, each bounded by `MAX_SEGMENT_RAW_BYTES` and
//! every deflate step by `MAX_STEP_PLAIN_BYTES`, and checks that the recipe covers the content
//! and the script makes the blob: a description from a bundle is never trusted, and one that
//! would make a reader allocate past those limits is refused before anything is stored.

use std::collections::HashSet;

use airlock_chunker::ChunkId;
use serde::{Deserialize, Serialize};

use crate::{
    Digest, Error, Result,
    index::{CutLayout, RecipeKind},
    layer::{Encoding, OpaqueReason},
    recipe::{Entry, SegmentError, decode_segment},
    script::{Corrections, Op, decode_script_segment},
};

/// Version of the description byte layout above.
pub const DESCRIPTION_FORMAT_VERSION: u32 = 3;

/// The preflate-rs version of the scripts in version 1 descriptions, and of stores before the
/// version was recorded per blob (their format headers name it too).
pub(crate) const LEGACY_PREFLATE_VERSION: &str = "preflate-rs 0.7";

const MAGIC: &[u8; 4] = b"ABLD";
/// A description never holds more segments than this, whatever its bytes claim.
const MAX_SEGMENTS: u32 = 16 * 1024 * 1024;

pub(super) type Segs = Vec<(u64, Vec<u8>)>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) digest: Digest,
    pub(super) size: u64,
    pub(super) kind: RecipeKind,
    pub(super) layout: CutLayout,
    pub(super) encoding: Encoding,
    pub(super) opaque: Option<OpaqueReason>,
    #[serde(rename = "rebuild_bytes")]
    pub(super) script_bytes: u64,
    pub(super) chunks: u64,
    pub(super) inline_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) preflate: Option<String>,
}

/// Everything needed to recreate a blob in another store, except its chunks.
#[derive(Debug, Clone)]
pub struct BlobDescription {
    pub(super) meta: Meta,
    pub(super) recipe: Segs,
    pub(super) script: Segs,
}

impl BlobDescription {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.meta.digest
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    /// Every chunk the blob needs (content and reconstruction data), once each, in first-use order.
    /// Fails on segments that do not decode.
    pub fn chunk_ids(&self) -> Result<Vec<ChunkId>> {
        Ok(self.chunks()?.into_iter().map(|(id, _)| id).collect())
    }

    /// As [`BlobDescription::chunk_ids`], with each chunk's length.
    pub fn chunks(&self) -> Result<Vec<(ChunkId, u32)>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut add = |id: ChunkId, len: u32| {
            if seen.insert(id) {
                out.push((id, len));
            }
        };
        for (start, bytes) in &self.recipe {
            let entries = decode_segment(bytes).map_err(|e| self.damaged("recipe", *start, &e))?;
            for e in entries {
                if let Entry::Chunk { id, len } = e {
                    add(id, len);
                }
            }
        }
        for (start, bytes) in &self.script {
            let ops =
                decode_script_segment(bytes).map_err(|e| self.damaged("script", *start, &e))?;
            for op in ops {
                if let Op::Step {
                    corrections: Corrections::Chunk { id, len },
                    ..
                } = op
                {
                    add(id, len);
                }
            }
        }
        Ok(out)
    }

    /// Bytes of the blob's content kept inline in its recipe and script (they travel in the
    /// description, not as chunks).
    pub fn inline_bytes(&self) -> u64 {
        self.meta.inline_bytes + self.meta.script_bytes
    }

    fn damaged(&self, what: &str, start: u64, e: &SegmentError) -> Error {
        Error::DescriptionCorrupt {
            what: format!(
                "{what} segment at {start} of blob {}: {e}",
                self.meta.digest
            ),
        }
    }

    /// Checks that every segment decodes within its limits, that the recipe's segments cover
    /// the content exactly, in order, and that the script's make the blob from it.
    pub(super) fn check(&self) -> Result<()> {
        let content = match self.meta.kind {
            RecipeKind::Plain => self.meta.size,
            RecipeKind::Deflate { plain_size } => plain_size,
        };
        let mut offset = 0u64;
        for (start, bytes) in &self.recipe {
            if *start != offset {
                return Err(Error::DescriptionCorrupt {
                    what: format!(
                        "recipe of blob {} has a segment at {start}, expected {offset}",
                        self.meta.digest
                    ),
                });
            }
            let entries = decode_segment(bytes).map_err(|e| self.damaged("recipe", *start, &e))?;
            offset = entries
                .iter()
                .fold(offset, |o, e| o.saturating_add(e.len()));
        }
        if offset != content {
            return Err(Error::DescriptionCorrupt {
                what: format!(
                    "recipe of blob {} covers {offset} bytes, its content has {content}",
                    self.meta.digest
                ),
            });
        }
        let (mut out, mut plain) = (0u64, 0u64);
        for (start, bytes) in &self.script {
            if *start != out {
                return Err(Error::DescriptionCorrupt {
                    what: format!(
                        "script of blob {} has a segment at {start}, expected {out}",
                        self.meta.digest
                    ),
                });
            }
            let ops =
                decode_script_segment(bytes).map_err(|e| self.damaged("script", *start, &e))?;
            for op in &ops {
                out = out.saturating_add(op.out_len());
                plain = plain.saturating_add(op.plain_len());
            }
        }
        if let RecipeKind::Deflate { plain_size } = self.meta.kind
            && (out != self.meta.size || plain != plain_size)
        {
            return Err(Error::DescriptionCorrupt {
                what: format!(
                    "script of blob {} makes {out} bytes from {plain} payload bytes, the blob \
                     has {} from {plain_size}",
                    self.meta.digest, self.meta.size
                ),
            });
        }
        Ok(())
    }

    /// The earliest version that describes the blob: 3 when its script holds a checkpoint
    /// (which starts its segment), else 2.
    fn version(&self) -> u32 {
        let checkpointed = self.script.iter().any(|(_, bytes)| {
            decode_script_segment(bytes)
                .is_ok_and(|ops| matches!(ops.first(), Some(Op::Checkpoint { .. })))
        });
        if checkpointed { 3 } else { 2 }
    }

    /// The description's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.meta).unwrap_or_default();
        let seg_bytes: usize = self
            .recipe
            .iter()
            .chain(&self.script)
            .map(|(_, b)| b.len() + 12)
            .sum();
        let mut out = Vec::with_capacity(16 + meta.len() + seg_bytes);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version().to_le_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        for segs in [&self.recipe, &self.script] {
            out.extend_from_slice(&(segs.len() as u32).to_le_bytes());
            for (start, bytes) in segs {
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Parses a description's bytes and checks it whole (see the module docs): from a bundle,
    /// never trusted.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlobDescription> {
        let mut r = Cursor { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(corrupt("not a blob description (bad magic)".into()));
        }
        let version = r.u32()?;
        if !(1..=DESCRIPTION_FORMAT_VERSION).contains(&version) {
            return Err(corrupt(format!(
                "blob description version {version}, this airlock reads 1 to \
                 {DESCRIPTION_FORMAT_VERSION}"
            )));
        }
        let meta_len = r.u32()? as usize;
        let mut meta: Meta = serde_json::from_slice(r.take(meta_len)?)
            .map_err(|e| corrupt(format!("blob description metadata: {e}")))?;
        if version == 1 && matches!(meta.kind, RecipeKind::Deflate { .. }) {
            meta.preflate = Some(LEGACY_PREFLATE_VERSION.to_owned());
        }
        let recipe = r.segments()?;
        let script = r.segments()?;
        if r.at != bytes.len() {
            return Err(corrupt(format!(
                "{} bytes after the end of blob description {}",
                bytes.len() - r.at,
                meta.digest
            )));
        }
        if matches!(meta.kind, RecipeKind::Plain) && !script.is_empty() {
            return Err(corrupt(format!(
                "plain blob {} carries a script",
                meta.digest
            )));
        }
        let desc = BlobDescription {
            meta,
            recipe,
            script,
        };
        desc.check()?;
        Ok(desc)
    }
}

fn corrupt(what: String) -> Error {
    Error::DescriptionCorrupt { what }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            corrupt(format!(
                "blob description ends at byte {} inside a field",
                self.bytes.len()
            ))
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn segments(&mut self) -> Result<Segs> {
        let n = self.u32()?;
        if n > MAX_SEGMENTS {
            return Err(corrupt(format!("blob description claims {n} segments")));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let start = self.u64()?;
            let len = self.u32()? as usize;
            out.push((start, self.take(len)?.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{
        index::CutLayout,
        recipe::{MAX_SEGMENT_RAW_BYTES, RecipeBuilder},
        script::ScriptBuilder,
    };

    /// A gzip stream of no content: 12 bytes of header and trailer, copied by its script.
    fn deflate_description(preflate: Option<&str>) -> BlobDescription {
        let mut script = ScriptBuilder::default();
        script.raw(b"a gzip layer");
        BlobDescription {
            meta: Meta {
                digest: Digest::sha256(b"a gzip layer"),
                size: 12,
                kind: RecipeKind::Deflate { plain_size: 0 },
                layout: CutLayout::Tar,
                encoding: Encoding::Gzip,
                opaque: None,
                script_bytes: 12,
                chunks: 0,
                inline_bytes: 0,
                preflate: preflate.map(str::to_owned),
            },
            recipe: Vec::new(),
            script: script.finish(),
        }
    }

    /// The bytes version 1 wrote: no `preflate` in the metadata.
    fn version_1_bytes(d: &BlobDescription) -> Vec<u8> {
        let mut meta: serde_json::Value = serde_json::to_value(&d.meta).unwrap();
        meta.as_object_mut().unwrap().remove("preflate");
        let meta = serde_json::to_vec(&meta).unwrap();
        let v2 = d.to_bytes();
        let old_meta_len = u32::from_le_bytes(v2[8..12].try_into().unwrap()) as usize;
        let mut out = b"ABLD".to_vec();
        out.extend(1u32.to_le_bytes());
        out.extend((meta.len() as u32).to_le_bytes());
        out.extend(&meta);
        out.extend(&v2[12 + old_meta_len..]);
        out
    }

    #[test]
    fn issue_13_descriptions_carry_their_preflate_version() {
        let d = deflate_description(Some("preflate-rs 0.9"));
        let bytes = d.to_bytes();
        assert_eq!(bytes[4..8], 2u32.to_le_bytes());
        let back = BlobDescription::from_bytes(&bytes).unwrap();
        assert_eq!(back.meta.preflate.as_deref(), Some("preflate-rs 0.9"));
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn issue_13_version_1_descriptions_are_read_as_preflate_rs_0_7() {
        let d = deflate_description(None);
        let back = BlobDescription::from_bytes(&version_1_bytes(&d)).unwrap();
        assert_eq!(back.meta.preflate.as_deref(), Some(LEGACY_PREFLATE_VERSION));
        assert_eq!(back.script, d.script);
        // A plain blob has no script, so no preflate-rs version.
        let mut plain = deflate_description(None);
        plain.meta.kind = RecipeKind::Plain;
        plain.script.clear();
        let mut recipe = RecipeBuilder::default();
        recipe.inline(b"a gzip layer");
        plain.recipe = recipe.finish();
        let back = BlobDescription::from_bytes(&version_1_bytes(&plain)).unwrap();
        assert_eq!(back.meta.preflate, None);
    }

    #[test]
    fn later_versions_are_refused_by_name() {
        let mut bytes = deflate_description(None).to_bytes();
        bytes[4..8].copy_from_slice(&(DESCRIPTION_FORMAT_VERSION + 1).to_le_bytes());
        let err = BlobDescription::from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("version 4"), "{err}");
    }

    #[test]
    fn issue_14_a_script_with_checkpoints_is_described_as_version_3() {
        let mut b = crate::script::ScriptBuilder::default();
        b.raw(b"header");
        b.checkpoint(b"");
        b.raw(b"member");
        let mut d = deflate_description(None);
        d.script = b.finish();
        let bytes = d.to_bytes();
        assert_eq!(bytes[4..8], 3u32.to_le_bytes());
        let back = BlobDescription::from_bytes(&bytes).unwrap();
        assert_eq!(back.script, d.script);
    }

    fn refused(bytes: &[u8]) -> String {
        match BlobDescription::from_bytes(bytes) {
            Err(Error::DescriptionCorrupt { what }) => what,
            other => panic!("expected DescriptionCorrupt, got {other:?}"),
        }
    }

    #[test]
    fn issue_16_a_segment_expanding_past_the_limit_is_refused_when_parsed() {
        let mut d = deflate_description(None);
        let bomb = zstd::stream::encode_all(&vec![0u8; MAX_SEGMENT_RAW_BYTES + 1][..], 19).unwrap();
        assert!(bomb.len() < 4096, "{} bytes", bomb.len());
        d.script = vec![(0, bomb)];
        let what = refused(&d.to_bytes());
        assert!(
            what.contains("script segment at 0 of blob sha256:")
                && what.contains("expands past the limit of 16777216 bytes"),
            "{what}"
        );
        let mut d = deflate_description(None);
        d.meta.kind = RecipeKind::Deflate { plain_size: 5 };
        let claims = zstd::bulk::compress(&vec![0u8; MAX_SEGMENT_RAW_BYTES + 1], 19).unwrap();
        d.recipe = vec![(0, claims)];
        let what = refused(&d.to_bytes());
        assert!(
            what.contains("recipe segment at 0")
                && what.contains("frame claims 16777217 bytes, over the limit"),
            "{what}"
        );
    }

    #[test]
    fn issue_16_lengths_and_counts_of_u32_max_are_refused_before_allocating() {
        let bytes = deflate_description(None).to_bytes();
        let meta_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let recipe_count = 12 + meta_len;
        // The script's segment: count, then start u64, then len u32.
        let script_count = recipe_count + 4;
        let script_len = script_count + 4 + 8;
        for (at, what) in [
            (8, "inside a field"),
            (recipe_count, "claims 4294967295 segments"),
            (script_count, "claims 4294967295 segments"),
            (script_len, "inside a field"),
        ] {
            let mut forged = bytes.clone();
            forged[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let got = refused(&forged);
            assert!(got.contains(what), "u32::MAX at {at}: {got}");
        }
    }

    #[test]
    fn issue_16_a_script_that_does_not_make_the_blob_is_refused() {
        let mut d = deflate_description(None);
        d.meta.size = 13;
        let what = refused(&d.to_bytes());
        assert!(
            what.contains("makes 12 bytes from 0 payload bytes"),
            "{what}"
        );
        let mut d = deflate_description(None);
        d.script[0].0 = 1;
        let what = refused(&d.to_bytes());
        assert!(what.contains("has a segment at 1, expected 0"), "{what}");
    }
}
