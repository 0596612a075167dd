//! bootstrap: the store is being written (issue 7)
mod digest;
mod error;
pub use crate::{digest::{Algorithm, Digest, Hasher, HashingReader}, error::{Error, Result}};
/// Identifier of a pack file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub u64);
impl std::fmt::Display for PackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{:016x}", self.0) }
}
