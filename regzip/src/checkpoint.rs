//! [`Checkpoint`]: a place in a split where rebuilding may start without the steps before it
//! (issue 14).

use crate::{Error, goflate::GoCheckpoint};

/// A checkpoint a splitter emitted ([`crate::Event::Checkpoint`]), decoded. Two kinds, told
/// apart by their bytes: at a gzip member's start (no bytes: the raw bytes that follow start
/// a new deflate stream, which needs nothing before it), and inside a goflate stream, where
/// the model restarts from a canonical state (layout in `goflate/checkpoint.rs`). preflate-rs
/// cannot restart inside a stream: a single-member stream of the zlib family has no
/// checkpoint and rebuilds from its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint(pub(crate) Kind);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Member,
    Go(GoCheckpoint),
}

impl Checkpoint {
    /// Decodes a checkpoint's bytes; damaged bytes fail ([`Error::Damaged`]), and so do those
    /// of a later goflate model ([`Error::ModelUnknown`]).
    pub fn decode(state: &[u8]) -> Result<Checkpoint, Error> {
        if state.is_empty() {
            return Ok(Checkpoint(Kind::Member));
        }
        Ok(Checkpoint(Kind::Go(GoCheckpoint::decode(state)?)))
    }

    /// Payload bytes right before the next step's own that a rebuild starting here needs
    /// ([`crate::Rebuilder::resume`]): at most about 130 KiB, none at a member's start.
    pub fn history(&self) -> u64 {
        match &self.0 {
            Kind::Member => 0,
            Kind::Go(cp) => cp.history() as u64,
        }
    }
}
