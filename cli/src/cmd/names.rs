//! References as users write them (`nginx:1.27`, `acme/gateway:1.0.0`,
//! `registry.example.com/x/y:1`, `REPO@DIGEST`), named by airlock's one naming rule
//! (`airlock_oci::RepoQuery`) against the store: every command that takes a reference reads it
//! here, so `export`, `diff` and `add --as` mean what a pull of the same name reads.

use airlock_oci::{ImageRef, RepoName, Target};
use airlock_store::Store;
use anyhow::{Context as _, Result};

/// The image `text` names: its repository the stored one the rule finds, or as written when
/// none is stored (the caller then reports the reference unknown).
pub fn image_ref(store: &Store, text: &str) -> Result<ImageRef> {
    ImageRef::resolve(text, stored(store))
}

/// The platforms of `--platform` (`add`, `export`, `diff`), each as `os/arch[/variant]`; the
/// first that does not parse is named.
pub fn platforms(texts: &[String]) -> Result<Vec<airlock_oci::Platform>> {
    texts
        .iter()
        .map(|p| p.parse().with_context(|| format!("--platform {p}")))
        .collect()
}

/// Where `add --as TEXT` stores: the repository a pull of that name reads, else the name itself.
pub fn target(store: &Store, text: &str) -> Result<Target> {
    Target::place(text, stored(store)).with_context(|| format!("--as {text:?}"))
}

/// Whether the store holds a repository, as the rule asks it.
pub fn stored(store: &Store) -> impl FnMut(&RepoName) -> Result<bool> + '_ {
    |name| {
        store
            .has_repository(name.as_str())
            .with_context(|| format!("looking up repository {name}"))
    }
}
