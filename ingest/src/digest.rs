//! The bridge between the digests OCI parses (`airlock_oci::Digest`, in descriptors and
//! references) and the store's (`airlock_store::Digest`, which hashes). Both apply the same rules,
//! so these fail only if the two ever drift apart.

use airlock_store::Digest;

use crate::error::{Context as _, Result};

/// The store's digest for an OCI one.
pub fn to_store(digest: &airlock_oci::Digest) -> Result<Digest> {
    digest
        .as_str()
        .parse()
        .context(|| format!("digest {digest}"))
}

/// The OCI digest for one the store computed.
pub fn to_oci(digest: &Digest) -> Result<airlock_oci::Digest> {
    digest
        .to_string()
        .parse()
        .context(|| format!("digest {digest}"))
}
