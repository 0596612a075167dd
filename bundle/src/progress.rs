//! What export and import tell their caller while they work (the CLI draws bars from it).

use std::path::Path;

/// Receives progress; every method has a default that ignores it.
pub trait Progress: Sync {
    /// A phase starts with `total` bytes to go.
    fn begin(&self, _phase: &str, _total: u64) {}
    /// `bytes` more are done.
    fn advance(&self, _bytes: u64) {}
    /// Volume `number` of `count` was written or read.
    fn volume(&self, _path: &Path, _number: u32, _count: u32) {}
    /// Something the operator should know (a skipped file, a volume already imported).
    fn note(&self, _message: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
