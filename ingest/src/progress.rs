//! What an add tells its caller while it works, through a trait: the CLI draws bars and prints
//! lines or JSON, tests record, [`NoProgress`] ignores. The library itself never prints.

use std::io::{self, Read};

use airlock_oci::{Descriptor, Digest, RepoName, Tag};

/// How an image's (or an application version's) commit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Links and tags were written.
    Added,
    /// Every tag already pointed at the root, linked in its repository: nothing changed.
    Present,
}

/// One image committed.
#[derive(Clone, Debug)]
pub struct ImageReport {
    /// Whether anything changed.
    pub outcome: Committed,
    /// The source it came from (`docker://...`, `oci:DIR name`).
    pub label: String,
    /// Its repository.
    pub repo: RepoName,
    /// The tags that point at it.
    pub tags: Vec<Tag>,
    /// Its root manifest.
    pub root: Descriptor,
    /// Manifests stored for it.
    pub manifests: usize,
    /// Blobs it reaches.
    pub blobs: usize,
}

/// One application version recorded (`add -f app.yaml`).
#[derive(Clone, Debug)]
pub struct AppReport {
    /// Whether anything changed.
    pub outcome: Committed,
    /// The application's name.
    pub name: String,
    /// Its version, the tag of its index.
    pub version: Tag,
    /// The repository of its versions.
    pub repo: RepoName,
    /// The digest of its index.
    pub digest: Digest,
    /// Images the index lists.
    pub images: usize,
}

/// The end of an add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Images committed.
    pub images: usize,
    /// Of those, how many changed anything.
    pub added: usize,
    /// Blobs stored now.
    pub blobs_stored: usize,
    /// Their bytes.
    pub bytes_stored: u64,
}

/// Receives an add's progress; every method does nothing unless overridden.
pub trait Progress: Sync {
    /// Blobs to store (those the store lacks) and their bytes.
    fn plan(&self, blobs: usize, bytes: u64) {
        let _ = (blobs, bytes);
    }

    /// A blob the store already has: nothing is read.
    fn blob_present(&self, blob: &Descriptor) {
        let _ = blob;
    }

    /// A blob starts streaming into the store.
    fn blob_started(&self, blob: &Descriptor) {
        let _ = blob;
    }

    /// `bytes` more of a blob were read.
    fn blob_read(&self, blob: &Descriptor, bytes: u64) {
        let _ = (blob, bytes);
    }

    /// A blob's transfer ended, stored or failed.
    fn blob_finished(&self, blob: &Descriptor, stored: bool) {
        let _ = (blob, stored);
    }

    /// Storing blobs ended: how many were stored and their bytes, or `None` when it failed.
    fn blobs_done(&self, stored: Option<(usize, u64)>) {
        let _ = stored;
    }

    /// Something worth telling a person (referrers an upstream cannot list).
    fn note(&self, text: &str) {
        let _ = text;
    }

    /// An image was committed.
    fn image(&self, report: &ImageReport) {
        let _ = report;
    }

    /// An application version was recorded.
    fn app(&self, report: &AppReport) {
        let _ = report;
    }

    /// The add is done.
    fn done(&self, summary: &Summary) {
        let _ = summary;
    }
}

/// Progress nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A reader that reports the bytes of `blob` read through it.
pub(crate) struct Counting<'a, R> {
    pub(crate) inner: R,
    pub(crate) blob: &'a Descriptor,
    pub(crate) progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.blob_read(self.blob, n as u64);
        Ok(n)
    }
}
