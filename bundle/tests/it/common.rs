//! Helpers shared by the tests: stores filled through the library, exports with small volumes.

use std::path::{Path, PathBuf};

use airlock_bundle::{
    ExportOptions, Have, ImportOptions, NoProgress, Trust, plan_export, write_export,
};
use airlock_oci::ImageRef;
use airlock_store::{Digest, PutOptions, RepoChange, Store, StoreOptions};

/// Pseudo-random bytes, different per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Puts `data` as a blob.
pub fn put(store: &Store, data: &[u8]) -> Digest {
    let d = Digest::sha256(data);
    store.put_blob(&d, data, PutOptions::default()).unwrap();
    d
}

/// Puts `manifest` and links it in `repo` with its children (and subject).
pub fn link_manifest(
    store: &Store,
    repo: &str,
    manifest: &[u8],
    children: &[Digest],
    subject: Option<(Digest, Vec<u8>)>,
) -> Digest {
    let d = put(store, manifest);
    store
        .apply_repo_changes(&[RepoChange::LinkManifest {
            repo: repo.into(),
            digest: d.clone(),
            children: children.to_vec(),
            subject,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        }])
        .unwrap();
    d
}

/// An image in `repo` tagged `tag`: a config, two layers sharing a chunk-sized run, and a
/// signature referring to it. Returns (manifest, signature, layers).
pub fn image(store: &Store, repo: &str, tag: &str, seed: u64) -> (Digest, Digest, Vec<Digest>) {
    let shared = bytes(seed, 300_000);
    let mut second = shared.clone();
    second.extend(bytes(seed + 1, 200_000));
    let layers = vec![put(store, &shared), put(store, &second)];
    let config = put(store, format!("{{\"seed\":{seed}}}").as_bytes());
    let mut children = vec![config];
    children.extend(layers.iter().cloned());
    let manifest = link_manifest(
        store,
        repo,
        format!("{{\"manifest\":{seed}}}").as_bytes(),
        &children,
        None,
    );
    store
        .apply_repo_changes(&[RepoChange::SetTag {
            repo: repo.into(),
            tag: tag.into(),
            digest: manifest.clone(),
        }])
        .unwrap();
    let sig = link_manifest(
        store,
        repo,
        format!("{{\"signature of\":{seed}}}").as_bytes(),
        &[],
        Some((manifest.clone(), b"{\"descriptor\":1}".to_vec())),
    );
    (manifest, sig, layers)
}

/// Export options: a full bundle `name` in `out`, volumes of `volume_size`, zstd level 3.
pub fn opts(out: &Path, name: &str, volume_size: u64, referrers: bool) -> ExportOptions {
    ExportOptions {
        name: name.into(),
        out_dir: out.to_owned(),
        volume_size,
        level: 3,
        referrers,
        platforms: Vec::new(),
        have: Have::Nothing,
        tool: "test".into(),
        program: None,
        signer: None,
        parity: 0,
    }
}

/// Exports `refs` from `store`; returns the volumes in order.
pub fn export(store: &Store, refs: &[&str], opts: &ExportOptions) -> Vec<PathBuf> {
    let refs: Vec<ImageRef> = refs.iter().map(|r| r.parse().unwrap()).collect();
    let plan = plan_export(store, &refs, opts).unwrap();
    write_export(store, plan, opts, &NoProgress)
        .unwrap()
        .volumes
}

/// Opens (or creates) a store with the default options.
pub fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

/// Import options for the unsigned bundles these tests write (what `--allow-unsigned` does).
pub fn unsigned() -> ImportOptions<'static> {
    ImportOptions {
        trust: Trust::allow_unsigned(),
        ..Default::default()
    }
}
