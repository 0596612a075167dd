//! The changes a write transaction makes.

use airlock_chunker::ChunkId;
use redb::ReadableTable;

use super::*;
use crate::{Digest, PackId};

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

    /// Records a blob with its recipe segments and script segments (start offset,
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
        let mut t = ix!(self, self.tx.open_table(SCRIPTS))?;
        for (start, bytes) in script {
            ix!(self, t.insert((key.as_str(), *start), bytes.as_slice()))?;
        }
        Ok(())
    }

    /// Marks a stored or staged blob as put again or linked at `now` (see
    /// [`BlobRecord::touched`]).
    pub fn touch_blob(&mut self, digest: &Digest, now: u64) -> Result<()> {
        let Some(mut rec) = self.blob(digest)? else {
            if let Some(mut staged) = self.staged(digest)? {
                staged.touched = now;
                self.put_staged(digest, &staged)?;
            }
            return Ok(());
        };
        rec.touched = now;
        let key = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(BLOBS))?;
        ix!(self, t.insert(key.as_str(), encode_json(&rec).as_slice()))?;
        Ok(())
    }

    /// Records a staged blob (or replaces its record).
    pub fn put_staged(&mut self, digest: &Digest, rec: &StagedRecord) -> Result<()> {
        let key = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(STAGED))?;
        ix!(self, t.insert(key.as_str(), encode_json(rec).as_slice()))?;
        Ok(())
    }

    /// Forgets a staged blob; returns whether it was staged.
    pub fn remove_staged(&mut self, digest: &Digest) -> Result<bool> {
        let key = digest.to_string();
        let mut t = ix!(self, self.tx.open_table(STAGED))?;
        Ok(ix!(self, t.remove(key.as_str()))?.is_some())
    }

    /// Removes a blob and its recipe (chunk reference counts are the caller's job).
    pub fn remove_blob(&mut self, digest: &Digest) -> Result<()> {
        let key = digest.to_string();
        {
            let mut t = ix!(self, self.tx.open_table(BLOBS))?;
            ix!(self, t.remove(key.as_str()))?;
        }
        for table in [RECIPES, SCRIPTS] {
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
        let mut a = ix!(self, self.tx.open_multimap_table(ABSENT))?;
        ix!(self, a.remove_all(key.as_str()))?;
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

    /// Records children of `parent` that it is linked without on purpose.
    pub fn put_absent(&mut self, parent: &Digest, children: &[Digest]) -> Result<()> {
        let p = parent.to_string();
        let mut t = ix!(self, self.tx.open_multimap_table(ABSENT))?;
        for c in children {
            let c = c.to_string();
            ix!(self, t.insert(p.as_str(), c.as_str()))?;
        }
        Ok(())
    }

    /// Forgets which children of `parent` were absent on purpose (a link with all of them).
    pub fn clear_absent(&mut self, parent: &Digest) -> Result<()> {
        let p = parent.to_string();
        let mut t = ix!(self, self.tx.open_multimap_table(ABSENT))?;
        ix!(self, t.remove_all(p.as_str()))?;
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

    /// Appends an event to an application's history.
    pub fn push_app_event(&mut self, repo: &str, ev: &crate::AppEvent) -> Result<()> {
        let mut t = ix!(self, self.tx.open_table(APP_EVENTS))?;
        let seq = {
            let mut range = ix!(self, t.range((repo, 0)..=(repo, u64::MAX)))?;
            match range.next_back() {
                Some(row) => ix!(self, row)?.0.value().1 + 1,
                None => 0,
            }
        };
        ix!(self, t.insert((repo, seq), encode_json(ev).as_slice()))?;
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
