//! What `verify`, `du`, GC and a read-write open do about staged blobs, kept apart from their
//! own modules: each calls in here once.

use std::{fs, io, path::Path};

use super::{STAGED_DIR, digest_of_name, staged_path};
use crate::{
    Digest, Error, Hasher, Result, Store, Verify,
    du::LayerUsage,
    index::{Index, ReadTx, StagedRecord},
    pack::sync_dir,
    verify::{Defect, VerifyReport},
};

/// Calls `f` on every staged blob's record, a page at a time, from one snapshot; a blob that
/// is stored as well (a crash between an ingest's commit and its cleanup) is stored and
/// skipped.
pub(crate) fn for_each_staged(
    rtx: &ReadTx<'_>,
    mut f: impl FnMut(&Digest, &StagedRecord) -> Result<()>,
) -> Result<()> {
    let mut after: Option<Digest> = None;
    loop {
        let page = rtx.staged_page(after.as_ref(), 4096)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (d, r) in &page {
            if rtx.blob(d)?.is_none() {
                f(d, r)?;
            }
        }
    }
}

/// What `du` counts of staged blobs.
pub(crate) fn staged_usage(rtx: &ReadTx<'_>) -> Result<LayerUsage> {
    let mut usage = LayerUsage::default();
    for_each_staged(rtx, |_, r| {
        usage.blobs += 1;
        usage.bytes += r.size;
        Ok(())
    })?;
    Ok(usage)
}

/// Removes what a crash left in `staged/`: blobs being received, and files no record names
/// (staged but not committed, or ingested but not yet removed).
pub(crate) fn sweep_staged(root: &Path, index: &Index) -> Result<()> {
    let dir = root.join(STAGED_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing", &dir)(e)),
    };
    let rtx = index.read()?;
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", &dir))?;
        let name = entry.file_name();
        let named = name.to_str().and_then(digest_of_name);
        let keep = match named {
            Some(d) => rtx.staged(&d)?.is_some(),
            None => false,
        };
        if !keep {
            tracing::info!(file = %entry.path().display(), "removing a staged file no record names");
            let path = entry.path();
            fs::remove_file(&path).map_err(Error::io("removing", &path))?;
        }
    }
    Ok(())
}

impl Store {
    /// Checks every staged blob's file: present, of its size and, with [`Verify::Full`],
    /// hashing to its digest. A file the ingest removed meanwhile (the blob is stored now) is
    /// no defect.
    pub(crate) fn verify_staged(
        &self,
        rtx: &ReadTx<'_>,
        depth: Verify,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let mut found = Vec::new();
        for_each_staged(rtx, |digest, rec| {
            found.push((digest.clone(), *rec));
            Ok(())
        })?;
        for (digest, rec) in found {
            report.blobs += 1;
            let path = staged_path(&self.inner.root, &digest);
            let problem = match fs::File::open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.inner.index.read()?.staged(&digest)?.is_none() {
                        continue;
                    }
                    report.defects.push(Defect::StagedMissing { digest, path });
                    continue;
                }
                Err(e) => return Err(Error::io("opening", &path)(e)),
                Ok(file) => check_file(file, &digest, &rec, depth, report)
                    .map_err(Error::io("reading", &path))?,
            };
            if let Some(what) = problem {
                report
                    .defects
                    .push(Defect::StagedCorrupt { digest, path, what });
            }
        }
        Ok(())
    }

    /// Removes the files of staged blobs whose records are gone (GC, under its lock).
    pub(crate) fn remove_staged_files(&self, digests: &[Digest]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        for digest in digests {
            let path = staged_path(&self.inner.root, digest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &path)(e)),
            }
        }
        sync_dir(&self.inner.root.join(STAGED_DIR))
    }
}

/// What is wrong with a staged file, if anything: its length, or (with [`Verify::Full`]) its
/// digest.
fn check_file(
    mut file: fs::File,
    digest: &Digest,
    rec: &StagedRecord,
    depth: Verify,
    report: &mut VerifyReport,
) -> io::Result<Option<String>> {
    let len = file.metadata()?.len();
    if len != rec.size {
        return Ok(Some(format!(
            "its file holds {len} bytes, {} were staged",
            rec.size
        )));
    }
    if depth == Verify::Quick {
        return Ok(None);
    }
    let mut h = Hasher::new(digest.algorithm());
    let n = io::copy(&mut file, &mut HashWriter(&mut h))?;
    report.bytes_hashed += n;
    let actual = h.finish();
    Ok((actual != *digest).then(|| format!("its file hashes to {actual}")))
}

/// Feeds what is written to a hasher.
struct HashWriter<'a>(&'a mut Hasher);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
