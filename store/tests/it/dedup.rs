//! Chunk-level dedup across blobs and versions, and what `PutOutcome` and `du` say about it.

use airlock_store::{Digest, Error, PutOptions, StoreOptions, Verify};

use crate::common::*;

#[test]
fn second_tar_version_adds_few_new_bytes() {
    let (_dir, store) = store_with(StoreOptions::default());
    let v1_files = tar_files(30, 60, 200 * 1024);
    let v1 = tar_of(&v1_files);
    let (d1, o1) = put(&store, &v1);
    // Version 2: two files edited, one added, a tenth of the mtimes changed.
    let mut v2_files = v1_files.clone();
    v2_files[3].data = seeded(31, v2_files[3].data.len());
    let len10 = v2_files[10].data.len();
    v2_files[10].data[len10 / 2..].copy_from_slice(&seeded(32, len10 - len10 / 2));
    for f in v2_files.iter_mut().step_by(10) {
        f.mtime += 3600;
    }
    v2_files.push(TarFile {
        path: "etc/new.conf".into(),
        data: text(33, 5000),
        mtime: 1,
    });
    let v2 = tar_of(&v2_files);
    let (d2, o2) = put(&store, &v2);
    assert!(!o2.existed);
    let changed = (v2_files[3].data.len() + v2_files[10].data.len() + 5000) as u64;
    assert!(
        o2.new_bytes <= changed + 2 * 256 * 1024,
        "v2 of {} bytes added {} new bytes; about {changed} changed",
        o2.size,
        o2.new_bytes
    );
    assert!(o2.new_bytes * 5 < o1.new_bytes, "{o2:?} vs {o1:?}");
    let du = store.du().unwrap();
    assert_eq!(du.blobs, 2);
    assert_eq!(du.tar_blobs, 2);
    assert_eq!(du.logical_bytes, (v1.len() + v2.len()) as u64);
    assert_eq!(du.chunk_bytes, o1.new_bytes + o2.new_bytes);
    assert!(du.pack_bytes < du.logical_bytes * 6 / 10, "{du:?}");
    assert_reads(&store, &d1, &v1);
    assert_reads(&store, &d2, &v2);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn put_outcome_counts_new_chunks_and_bytes() {
    let (dir, store) = store_with(small_opts(64 * 1024 * 1024));
    // Random content repeated four times: a quarter of it is new.
    let part = seeded(40, 300_000);
    let data = part.repeat(4);
    let (d, out) = put(&store, &data);
    assert_eq!(out.digest, d);
    assert_eq!(out.size, data.len() as u64);
    assert!(!out.existed);
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert!(out.new_chunks > 0 && out.new_chunks < stat.chunks);
    assert!(
        out.new_bytes < data.len() as u64 / 3,
        "repeats dedup within a blob: {out:?}"
    );
    // Random bytes do not compress: stored is about new bytes plus frame overhead.
    assert!(out.stored_bytes >= out.new_bytes, "{out:?}");
    assert!(
        out.stored_bytes < out.new_bytes + out.new_bytes / 20,
        "{out:?}"
    );
    let du = store.du().unwrap();
    assert_eq!(du.chunks, out.new_chunks);
    assert_eq!(du.chunk_bytes, out.new_bytes);
    let on_disk: u64 = pack_files(dir.path()).iter().map(|p| p.1).sum();
    assert_eq!(du.pack_bytes, on_disk);
    assert!(du.stored_bytes() >= du.pack_bytes + du.index_bytes);

    // A different blob holding the same content plus a tail adds only the tail.
    let mut longer = data.clone();
    longer.extend(seeded(41, 50_000));
    let (_, out2) = put(&store, &longer);
    assert!(out2.new_bytes <= 50_000 + 16384, "{out2:?}");
}

#[test]
fn re_put_writes_nothing_and_still_checks_content() {
    let (dir, store) = store_with(small_opts(64 * 1024 * 1024));
    let data = seeded(50, 500_000);
    let (d, first) = put(&store, &data);
    let packs = pack_files(dir.path());
    let du = store.du().unwrap();
    let again = store
        .put_blob(&d, &data[..], PutOptions::default())
        .unwrap();
    assert!(again.existed);
    assert_eq!(again.size, first.size);
    assert_eq!(
        (again.new_chunks, again.new_bytes, again.stored_bytes),
        (0, 0, 0)
    );
    assert_eq!(pack_files(dir.path()), packs);
    assert_eq!(store.du().unwrap().chunk_bytes, du.chunk_bytes);
    // Wrong content under an existing digest is refused, and the blob is untouched.
    let wrong = seeded(51, 500_000);
    let err = store
        .put_blob(&d, &wrong[..], PutOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, actual }
            if *expected == d && *actual == Digest::sha256(&wrong)),
        "{err}"
    );
    // So is the right content with a wrong promised size.
    let err = store
        .put_blob(
            &d,
            &data[..],
            PutOptions {
                expected_size: Some(data.len() as u64 + 1),
                ..PutOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert_eq!(pack_files(dir.path()), packs);
    assert_reads(&store, &d, &data);
}
