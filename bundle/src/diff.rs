//! Upgrade previews (`airlock diff A B`): what a delta from references A to references B, both
//! held in one store, would ship. The site is taken to hold exactly what A reaches (manifests,
//! blobs, and every chunk of those blobs), written down as an [`Inventory`]; B is then planned by
//! the export planner against it, so the figures are those `airlock export B --have` would
//! print for a site that holds A and nothing else. Nothing is written.

use std::collections::BTreeMap;

use airlock_oci::{ImageRef, Platform};
use airlock_store::{Digest, Store};

use crate::{
    content::{self, resolve},
    error::{Error, Result},
    export::{DEFAULT_LEVEL, ExportOptions, Have, plan_export},
    inventory::Inventory,
};

/// What a delta from one set of references to another would ship.
#[derive(Clone, Debug)]
pub struct DeltaPlan {
    /// Blobs the site holds (everything the old references reach).
    pub have_blobs: usize,
    /// Chunks of those blobs.
    pub have_chunks: usize,
    /// Blobs the new references reach.
    pub blobs: usize,
    /// Bytes of those blobs.
    pub blob_bytes: u64,
    /// Blobs the new references reach that the old ones do not (manifests, configs, changed
    /// layers), with their sizes: what a blob-level tool would ship.
    pub new_blobs: BTreeMap<Digest, u64>,
    /// Bytes of `new_blobs`.
    pub new_blob_bytes: u64,
    /// Chunks the delta ships: those of the new blobs that no old blob has.
    pub chunks: usize,
    /// Raw (uncompressed) bytes of those chunks, before the bundle's compression.
    pub chunk_bytes: u64,
}

/// An inventory of what a store holding exactly `refs` (and, with `referrers`, their
/// referrers; of multi-platform indexes, `platforms` only, all when empty) would have: every
/// blob they reach and every chunk of those blobs.
pub fn inventory_of(
    store: &Store,
    refs: &[ImageRef],
    referrers: bool,
    platforms: &[Platform],
) -> Result<Inventory> {
    let resolved = refs
        .iter()
        .map(|r| resolve(store, r))
        .collect::<Result<Vec<_>>>()?;
    let content = content::collect(store, &resolved, referrers, platforms)?;
    let mut builder = Inventory::builder(format!("{:?}", store.format()));
    for digest in content.blobs {
        let ids = store
            .describe_blob(&digest)
            .and_then(|d| d.chunk_ids())
            .map_err(|e| Error::store(format!("reading the recipe of blob {digest}"), e))?;
        builder.add_chunks(ids);
        builder.add_blob(digest);
    }
    Ok(builder.build())
}

/// Plans the delta that brings a site holding `from` to `to` (both resolved in `store`), with
/// the export planner; `from` may be empty (a full bundle). With `platforms`, the site holds
/// and gets only those platforms of multi-platform indexes, as `export --platform` ships.
pub fn plan_delta(
    store: &Store,
    from: &[ImageRef],
    to: &[ImageRef],
    referrers: bool,
    platforms: &[Platform],
) -> Result<DeltaPlan> {
    let have = inventory_of(store, from, referrers, platforms)?;
    let (have_blobs, have_chunks) = (have.blobs().len(), have.chunks().len());
    let opts = ExportOptions {
        name: "diff".into(),
        out_dir: Default::default(),
        volume_size: u64::MAX,
        level: DEFAULT_LEVEL,
        referrers,
        platforms: platforms.to_vec(),
        have: Have::Inventory(Box::new(have)),
        tool: "airlock diff".into(),
        program: None,
        signer: None,
        parity: 0,
    };
    let plan = plan_export(store, to, &opts)?;
    let new_blobs: BTreeMap<Digest, u64> = plan
        .images
        .iter()
        .flat_map(|i| i.new_blobs.iter().cloned())
        .collect();
    Ok(DeltaPlan {
        have_blobs,
        have_chunks,
        blobs: plan.index.blobs.len(),
        blob_bytes: plan.blob_bytes,
        new_blob_bytes: plan.new_blob_bytes,
        new_blobs,
        chunks: plan.chunks.len(),
        chunk_bytes: plan.chunk_bytes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use airlock_store::{PutOptions, RepoChange, StoreOptions};

    use super::*;

    /// Pseudo-random bytes, different per seed.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
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

    fn put(store: &Store, data: &[u8]) -> Digest {
        let d = Digest::sha256(data);
        store.put_blob(&d, data, PutOptions::default()).unwrap();
        d
    }

    /// Stores an "image": a manifest over `blobs`, tagged `repo:tag`.
    fn image(store: &Store, repo: &str, tag: &str, blobs: &[&[u8]]) -> ImageRef {
        let children: Vec<Digest> = blobs.iter().map(|b| put(store, b)).collect();
        let manifest = put(store, format!("manifest {repo}:{tag}").as_bytes());
        let mut changes: Vec<RepoChange> = children
            .iter()
            .map(|d| RepoChange::LinkBlob {
                repo: repo.into(),
                digest: d.clone(),
            })
            .collect();
        changes.push(RepoChange::LinkManifest {
            repo: repo.into(),
            digest: manifest.clone(),
            children,
            subject: None,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        });
        changes.push(RepoChange::SetTag {
            repo: repo.into(),
            tag: tag.into(),
            digest: manifest,
        });
        store.apply_repo_changes(&changes).unwrap();
        format!("{repo}:{tag}").parse::<ImageRef>().unwrap()
    }

    #[test]
    fn a_rebuilt_layer_ships_only_its_changed_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let base = bytes(1, 2 << 20);
        let mut rebuilt = base.clone();
        rebuilt[1 << 20] ^= 0x5a;
        let service = bytes(2, 300 << 10);
        let a = image(&store, "shop/web", "1", &[b"config 1", &base, &service]);
        let b = image(&store, "shop/web", "2", &[b"config 2", &rebuilt, &service]);

        let plan = plan_delta(
            &store,
            std::slice::from_ref(&a),
            std::slice::from_ref(&b),
            true,
            &[],
        )
        .unwrap();
        // New: the manifest, the config and the rebuilt layer; the service layer is shared.
        assert_eq!(plan.new_blobs.len(), 3, "{plan:?}");
        assert!(plan.new_blobs.contains_key(&Digest::sha256(&rebuilt)));
        assert!(!plan.new_blobs.contains_key(&Digest::sha256(&service)));
        assert!(plan.new_blob_bytes > rebuilt.len() as u64);
        // One byte changed in 2 MiB: a chunk or two of it, plus the small blobs.
        assert!(plan.chunks >= 1 && plan.chunks <= 6, "{plan:?}");
        assert!(plan.chunk_bytes * 4 < rebuilt.len() as u64, "{plan:?}");
        assert_eq!(plan.have_blobs, 4);

        // From nothing: everything B reaches, each chunk once.
        let full = plan_delta(&store, &[], std::slice::from_ref(&b), true, &[]).unwrap();
        assert_eq!(full.new_blobs.len(), 4);
        assert_eq!(full.new_blob_bytes, full.blob_bytes);
        assert_eq!(
            full.chunk_bytes, full.blob_bytes,
            "plain blobs: chunks are the bytes"
        );
    }

    #[test]
    fn the_same_content_ships_nothing_and_unknown_refs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let layer = bytes(3, 200 << 10);
        let a = image(&store, "shop/api", "1", &[b"config", &layer]);
        let plan = plan_delta(
            &store,
            std::slice::from_ref(&a),
            std::slice::from_ref(&a),
            true,
            &[],
        )
        .unwrap();
        assert_eq!((plan.chunks, plan.chunk_bytes), (0, 0));
        assert!(plan.new_blobs.is_empty());
        assert_eq!(plan.blobs, 3);

        let missing = "shop/api:9".parse::<ImageRef>().unwrap();
        let err = plan_delta(&store, &[missing], &[a], true, &[]).unwrap_err();
        assert!(err.to_string().contains("shop/api:9"), "{err}");
    }
}
