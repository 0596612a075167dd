//! Failed puts store nothing; reads of unknown blobs and bad ranges fail with named errors.

use std::io::{self, Read};

use airlock_store::{Digest, Error, PutOptions, RepoChange, Store, StoreOptions, Verify};

use crate::common::*;

/// Everything a failed put must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    packs: Vec<(airlock_store::PackId, u64)>,
    blobs: u64,
    chunks: u64,
    pack_bytes: u64,
}

fn snapshot(dir: &std::path::Path, store: &Store) -> Snapshot {
    let du = store.du().unwrap();
    Snapshot {
        packs: pack_files(dir),
        blobs: du.blobs,
        chunks: du.chunks,
        pack_bytes: du.pack_bytes,
    }
}

#[test]
fn digest_mismatch_leaves_nothing() {
    let (dir, store) = store_with(small_opts(256 * 1024));
    // On a fresh store: not even an empty pack file is left.
    let data = seeded(60, 900_000);
    let promised = Digest::sha256(b"something else");
    let err = store
        .put_blob(&promised, &data[..], PutOptions::default())
        .unwrap_err();
    let actual = Digest::sha256(&data);
    match &err {
        Error::DigestMismatch {
            expected,
            actual: a,
        } => {
            assert_eq!(expected, &promised);
            assert_eq!(a, &actual);
        }
        other => panic!("expected DigestMismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&promised.to_string()) && msg.contains(&actual.to_string()));
    assert!(!store.has_blob(&promised).unwrap());
    assert!(!store.has_blob(&actual).unwrap());
    assert_eq!(pack_files(dir.path()), vec![]);

    // On a store with content: files, lengths and du unchanged.
    let (kept, _) = put(&store, &seeded(61, 300_000));
    let before = snapshot(dir.path(), &store);
    let err = store
        .put_blob(&promised, &data[..], PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }));
    assert_eq!(snapshot(dir.path(), &store), before);
    assert!(!store.has_blob(&promised).unwrap());
    // The chunks of the refused content were not kept: putting it properly stores them all.
    let (_, out) = put(&store, &data);
    assert!(out.new_bytes >= data.len() as u64 * 9 / 10, "{out:?}");
    assert_reads(&store, &kept, &seeded(61, 300_000));
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn too_large_and_size_mismatch() {
    let (dir, store) = store_with(small_opts(256 * 1024));
    put(&store, &seeded(62, 10_000));
    let before = snapshot(dir.path(), &store);
    let data = seeded(63, 200_000);
    let d = Digest::sha256(&data);
    let limit = |max: u64| PutOptions {
        max_size: Some(max),
        ..PutOptions::default()
    };
    let err = store.put_blob(&d, &data[..], limit(199_999)).unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { digest } if *digest == d),
        "{err}"
    );
    assert_eq!(snapshot(dir.path(), &store), before);
    assert!(!store.has_blob(&d).unwrap());
    // Content longer than its promised size is refused the same way.
    let promise = |n: u64| PutOptions {
        expected_size: Some(n),
        ..PutOptions::default()
    };
    let err = store.put_blob(&d, &data[..], promise(1000)).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    // Shorter than promised.
    let err = store.put_blob(&d, &data[..], promise(300_000)).unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { digest, expected: 300_000, actual: 200_000 }
            if *digest == d),
        "{err}"
    );
    assert_eq!(snapshot(dir.path(), &store), before);
    // Exactly at the limit and the promise is fine.
    let both = PutOptions {
        max_size: Some(200_000),
        expected_size: Some(200_000),
    };
    store.put_blob(&d, &data[..], both).unwrap();
    assert_reads(&store, &d, &data);
    // An existing blob still gets the limit.
    let err = store.put_blob(&d, &data[..], limit(10)).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

/// A reader that yields `ok` bytes of content, then fails.
struct FailingReader {
    data: Vec<u8>,
    at: usize,
    ok: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.ok {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer went away",
            ));
        }
        let n = buf.len().min(self.ok - self.at).min(8192);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn reader_failing_mid_stream_stores_nothing() {
    let (dir, store) = store_with(small_opts(256 * 1024));
    let (kept, _) = put(&store, &seeded(64, 100_000));
    let before = snapshot(dir.path(), &store);
    let data = seeded(65, 3_000_000);
    let d = Digest::sha256(&data);
    let src = FailingReader {
        data: data.clone(),
        at: 0,
        ok: 2_000_000,
    };
    let err = store.put_blob(&d, src, PutOptions::default()).unwrap_err();
    match &err {
        Error::Source {
            digest,
            offset,
            source,
        } => {
            assert_eq!(digest, &d);
            assert!(*offset <= 2_000_000, "{offset}");
            assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
        }
        other => panic!("expected Source, got {other}"),
    }
    assert_eq!(snapshot(dir.path(), &store), before);
    assert!(!store.has_blob(&d).unwrap());
    // For an existing blob too.
    let src = FailingReader {
        data: seeded(64, 100_000),
        at: 0,
        ok: 50_000,
    };
    let err = store
        .put_blob(&kept, src, PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Source { .. }), "{err}");
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn unknown_blobs_and_bad_ranges() {
    let (_dir, store) = store_with(StoreOptions::default());
    let unknown = Digest::sha256(b"never stored");
    assert!(!store.has_blob(&unknown).unwrap());
    assert_eq!(store.stat_blob(&unknown).unwrap(), None);
    for err in [
        store.open_blob(&unknown).map(|_| ()).unwrap_err(),
        store
            .open_blob_range(&unknown, 0..1)
            .map(|_| ())
            .unwrap_err(),
        store.read_blob(&unknown).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::BlobNotFound { digest } if *digest == unknown),
            "{err}"
        );
    }
    let data = seeded(66, 1000);
    let (d, _) = put(&store, &data);
    #[allow(clippy::reversed_empty_ranges)] // a reversed range is the point
    for (a, b) in [(0, 1001), (1000, 1001), (5, 4), (2000, 3000)] {
        let err = store.open_blob_range(&d, a..b).map(|_| ()).unwrap_err();
        assert!(
            matches!(&err, Error::RangeNotSatisfiable { digest, start, end, size: 1000 }
                if *digest == d && *start == a && *end == b),
            "{err}"
        );
    }
    assert!(store.open_blob_range(&d, 1000..1000).unwrap().is_empty());
    // Links need the blob stored.
    let err = store.link_blob("app", &unknown).unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err}");
    let err = store
        .apply_repo_changes(&[RepoChange::LinkBlob {
            repo: String::new(),
            digest: d.clone(),
        }])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}
