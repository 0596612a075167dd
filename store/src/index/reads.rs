//! Lookups shared by both transaction kinds, written once over redb's `ReadableTable`.

use airlock_chunker::ChunkId;
use redb::{ReadableMultimapTable, ReadableTable};

use super::*;
use crate::{
    Digest, PackId,
    recipe::{Entry, decode_segment},
    script::{Corrections, Op, decode_script_segment},
};

macro_rules! reads {
    ($t:ty) => {
        // Not every read is needed on both transaction kinds.
        #[allow(dead_code)]
        impl $t {
            /// The record of a chunk, if indexed.
            pub fn chunk(&self, id: &ChunkId) -> Result<Option<ChunkRecord>> {
                let t = ix!(self, self.tx.open_table(CHUNKS))?;
                super::chunks::get_chunk(&t, self.path, id)
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

            /// The record of a staged blob, if it is staged.
            pub fn staged(&self, digest: &Digest) -> Result<Option<StagedRecord>> {
                let t = match self.tx.open_table(STAGED) {
                    // An index written before store format 3: nothing is staged.
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    other => ix!(self, other)?,
                };
                let key = digest.to_string();
                match ix!(self, t.get(key.as_str()))? {
                    Some(v) => Ok(Some(decode_json(self.path, "staged blob", v.value())?)),
                    None => Ok(None),
                }
            }

            /// Whether a blob is stored or staged: what a link or a reference needs.
            pub fn holds_blob(&self, digest: &Digest) -> Result<bool> {
                Ok(self.blob(digest)?.is_some() || self.staged(digest)?.is_some())
            }

            /// Staged blobs in digest order, starting after `after`, at most `limit`.
            pub fn staged_page(
                &self,
                after: Option<&Digest>,
                limit: usize,
            ) -> Result<Vec<(Digest, StagedRecord)>> {
                let t = match self.tx.open_table(STAGED) {
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    other => ix!(self, other)?,
                };
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
                    out.push((digest, decode_json(self.path, "staged blob", v.value())?));
                }
                Ok(out)
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

            /// A segment of a blob's recipe or script, if there is one where asked: its start
            /// and bytes.
            pub fn segment(
                &self,
                list: SegmentList,
                digest: &Digest,
                at: SegmentAt,
            ) -> Result<Option<(u64, Vec<u8>)>> {
                let t = ix!(self, self.tx.open_table(list.table()))?;
                let key = digest.to_string();
                let key = key.as_str();
                let row = match at {
                    SegmentAt::Covering(offset) => {
                        ix!(self, t.range((key, 0)..=(key, offset)))?.next_back()
                    }
                    SegmentAt::After(Some(u64::MAX)) => None,
                    SegmentAt::After(after) => {
                        let from = after.map_or(0, |a| a + 1);
                        ix!(self, t.range((key, from)..=(key, u64::MAX)))?.next()
                    }
                };
                match row {
                    Some(row) => {
                        let (k, v) = ix!(self, row)?;
                        Ok(Some((k.value().1, v.value().to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// Every segment of a blob's recipe or script, in order.
            pub fn segments(
                &self,
                list: SegmentList,
                digest: &Digest,
            ) -> Result<Vec<(u64, Vec<u8>)>> {
                let mut out = Vec::new();
                let mut after = None;
                while let Some((start, bytes)) =
                    self.segment(list, digest, SegmentAt::After(after))?
                {
                    after = Some(start);
                    out.push((start, bytes));
                }
                Ok(out)
            }

            /// Every entry of a blob's recipe, in order, or a description of the damage.
            pub fn recipe_entries(
                &self,
                digest: &Digest,
                size: u64,
            ) -> Result<std::result::Result<Vec<Entry>, String>> {
                let mut out = Vec::new();
                let mut offset = 0u64;
                let mut seg = self.segment(SegmentList::Recipe, digest, SegmentAt::After(None))?;
                while let Some((start, bytes)) = seg {
                    if start != offset {
                        return Ok(Err(format!("segment starts at {start}, expected {offset}")));
                    }
                    let entries = match decode_segment(&bytes) {
                        Ok(entries) => entries,
                        Err(e) => {
                            return Ok(Err(format!("segment at {start} does not decode: {e}")));
                        }
                    };
                    for e in entries {
                        offset += e.len();
                        out.push(e);
                    }
                    seg =
                        self.segment(SegmentList::Recipe, digest, SegmentAt::After(Some(start)))?;
                }
                if offset != size {
                    return Ok(Err(format!(
                        "recipe covers {offset} bytes, the blob has {size}"
                    )));
                }
                Ok(Ok(out))
            }

            /// Every op of a blob's script, or a description of the damage.
            pub fn script_ops(
                &self,
                digest: &Digest,
                size: u64,
                plain_size: u64,
            ) -> Result<std::result::Result<Vec<Op>, String>> {
                let (mut out, mut offset, mut plain) = (Vec::new(), 0u64, 0u64);
                let mut seg = self.segment(SegmentList::Script, digest, SegmentAt::After(None))?;
                while let Some((start, bytes)) = seg {
                    if start != offset {
                        return Ok(Err(format!(
                            "script segment starts at {start}, expected {offset}"
                        )));
                    }
                    let ops = match decode_script_segment(&bytes) {
                        Ok(ops) => ops,
                        Err(e) => {
                            return Ok(Err(format!(
                                "script segment at {start} does not decode: {e}"
                            )));
                        }
                    };
                    for op in ops {
                        offset += op.out_len();
                        plain += op.plain_len();
                        out.push(op);
                    }
                    seg =
                        self.segment(SegmentList::Script, digest, SegmentAt::After(Some(start)))?;
                }
                if offset != size || plain != plain_size {
                    return Ok(Err(format!(
                        "script makes {offset} bytes from {plain} payload bytes, the \
                         blob has {size} from {plain_size}"
                    )));
                }
                Ok(Ok(out))
            }

            /// Every chunk a blob's recipes name (content and script), once each, or
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

            /// The events of an application (by its repository), oldest first, as (seq, event).
            pub fn app_events(&self, repo: &str) -> Result<Vec<(u64, crate::AppEvent)>> {
                let t = match self.tx.open_table(APP_EVENTS) {
                    // An index written before store format 4: no application recorded.
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    other => ix!(self, other)?,
                };
                let mut out = Vec::new();
                for row in ix!(self, t.range((repo, 0)..=(repo, u64::MAX)))? {
                    let (k, v) = ix!(self, row)?;
                    out.push((k.value().1, decode_json(self.path, "app event", v.value())?));
                }
                Ok(out)
            }

            /// The repositories of applications with recorded events, sorted.
            pub fn app_repos(&self) -> Result<Vec<String>> {
                let t = match self.tx.open_table(APP_EVENTS) {
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    other => ix!(self, other)?,
                };
                let mut out: Vec<String> = Vec::new();
                for row in ix!(self, t.iter())? {
                    let (k, _) = ix!(self, row)?;
                    let repo = k.value().0;
                    if out.last().map(String::as_str) != Some(repo) {
                        out.push(repo.to_owned());
                    }
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

            /// Whether `repo` is a repository of the store.
            pub fn has_repo(&self, repo: &str) -> Result<bool> {
                let t = ix!(self, self.tx.open_table(REPOS))?;
                Ok(ix!(self, t.get(repo))?.is_some())
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

            /// Children `parent` was linked without on purpose (see `WriteTx::put_absent`).
            /// An index of an older store lacks the table: nothing is absent there.
            pub fn absent(&self, parent: &Digest) -> Result<Vec<Digest>> {
                let t = match self.tx.open_multimap_table(ABSENT) {
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    other => ix!(self, other)?,
                };
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

reads!(ReadTx<'_>);
reads!(WriteTx<'_>);
