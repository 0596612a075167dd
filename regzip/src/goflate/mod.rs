//! Rebuilding gzip streams made by Go programs (compress/gzip, klauspost/pgzip) bit for bit
//! from their decompressed payload and a little reconstruction data (issue 6).
//!
//! preflate-rs cannot predict Go's encoders, so this module models them itself, written from
//! RFC 1951/1952 and the encoders' public parameters (see `predict`). A deflate stream is
//! parsed into blocks of tokens (`deflate`); a model like the producer runs over the payload
//! and proposes each token; the reconstruction data records each block's payload length, its
//! Huffman header as it was written unless it is the one Go derives from the block's tokens
//! (`huffman`), and only the tokens where the proposal was wrong. To rebuild, the model runs
//! again, takes the recorded tokens where it was wrong, and the blocks are written with the
//! canonical codes of their headers (`write`): the same bits.
//!
//! A rebuild costs what the model costs: the chunk models (Go's level 1, pgzip) hash each
//! position once, and a block they predicted whole is taken from their list of copies without
//! a proposal per token; the chain model of Go's levels 2-9 must walk every chain as Go does
//! (the search may skip comparisons that cannot change the chosen match, never candidates),
//! so it is bound by following the links (two to three per payload byte at level 6).
//!
//! [`GoSplitter`] splits a gzip stream as it streams in, like the preflate-rs splitter and with
//! the same events and gzip member state machine: deflate streams are cut into steps of whole
//! blocks (about [`STEP_OUT_BYTES`] of compressed output each; the bits of a byte shared by two
//! steps are carried over), and each step's payload reaches past its last block as far as the
//! producer saw when it chose the tokens ([`predict::LOOKAHEAD`] bytes for Go's levels, the rest
//! of a 64 KiB chunk for the chunk models), or to the next flush point (a pgzip step that is
//! to end at a checkpoint waits for the next flush). Every step is rebuilt by a
//! [`GoRebuilder`] on the verifier's thread and compared with its input; a split that finishes
//! has proven that its events rebuild the input exactly. [`detect()`] picks the producer from
//! the header and a trial over the first blocks.
//!
//! Modelled exactly (no differences on the fixtures): Go's compress/flate at levels 1-9 as
//! Go 1.19 writes it (Debian's; later releases up to 1.26 are not checked here), with or
//! without flushes, and pgzip's default level (klauspost/compress 1.15's level 5) at any block
//! size. Other pgzip levels run the nearest model and pay for its differences; a stream whose
//! trial costs more than 4% goes to preflate-rs, then stays as it is.
//!
//! The models are part of the on-disk format: rebuilding runs the model again, so a change to
//! what a model proposes changes what existing reconstruction data rebuilds to. Every step's data
//! therefore starts with its model version, [`MODEL_VERSION`], which names both the byte layout
//! below and the behaviour of every model (the predictors in `predict`, `fast1` and `fast5`, the
//! Huffman headers `huffman` derives, where `split` cuts steps and what the model sees of the
//! payload). A change to any of them bumps it and keeps the earlier behaviour for data that
//! carries the earlier version; data of a version this build does not know fails to rebuild
//! with [`crate::Error::ModelUnknown`], never as other bytes. The golden fixtures in
//! `tests/golden` (written by version 1) must rebuild exactly forever.
//!
//! Version 2 (issue 14) added checkpoints (`checkpoint`): about every megabyte of output a step
//! may start where the model restarts from a canonical state, recorded in a few bytes of their
//! own (magic `GOC`, layout in `checkpoint`), so that a rebuild may start there. Its step data has
//! version 1's layout, and version 1's steps rebuild as before; a version 2 step after a
//! checkpoint rebuilds only after the same restart, which the version keeps a build that does
//! not know checkpoints from attempting.
//!
//! Reconstruction data of one step, model versions 1 and 2 (varints are LEB128):
//!
//! ```text
//! step    := "GOF" model:u8 producer:u8 ends_at_sync:u8 nblocks:varint block* final_pad:u8
//! producer:= 1..=9 Go compress/flate level | 0x40|level pgzip (model reset at every flush)
//! block   := head:u8 plain:varint body
//! head    := bit 0 BFINAL | bits 1-2 BTYPE | bit 3 skip (tokens are literals, model unheard)
//!          | bit 4 derived (dynamic, header as Go derives it from the tokens); bits 5-7 zero
//! body    := pad:u8                                  stored: alignment bits before LEN
//!          | ndiffs:varint diff*                     fixed Huffman codes, or derived header
//!          | bits:varint header{ceil(bits/8)} ndiffs:varint diff*
//!                                                    dynamic: the header after BTYPE, LSB first
//! diff    := gap:varint token:varint                 token index minus the previous diff's
//! token   := 0 (a literal: the payload's byte) | 1 + ((dist-1) << 9 | (len-3))
//! ```
//!
//! `ends_at_sync` says the step's payload ends where the encoder's input ended (a flush or
//! the close); `final_pad` holds the bits after the stream's last block when it is in the step.

mod checkpoint;
mod deflate;
mod detect;
mod fast1;
mod fast5;
mod huffman;
mod predict;
mod split;
mod step;
mod write;

pub(crate) use checkpoint::GoCheckpoint;
pub(crate) use detect::{detect, is_pgzip_header};
pub use split::GoSplitter;
pub(crate) use step::GoRebuilder;

use predict::{Chains, Model, Window};

/// Version of the goflate models and of their reconstruction data's byte layout (see the module
/// documentation); the second byte of every step's data.
pub const MODEL_VERSION: u8 = 2;

/// First bytes of every step's reconstruction data.
pub(crate) const MAGIC: [u8; 3] = *b"GOF";

/// Compressed output per step, roughly (steps end at block boundaries).
pub(crate) const STEP_OUT_BYTES: usize = 256 * 1024;

/// Which encoder made a deflate stream: the model a [`GoSplitter`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// Go's compress/flate at a level 1-9 (compress/gzip's default is 6).
    Go(u8),
    /// klauspost/pgzip: independent blocks, each compressed with the previous block's tail as
    /// its dictionary and ended by a flush.
    Pgzip(u8),
}

const PGZIP_BIT: u8 = 0x40;

impl Producer {
    fn code(self) -> u8 {
        match self {
            Producer::Go(l) => l,
            Producer::Pgzip(l) => PGZIP_BIT | l,
        }
    }

    fn from_code(c: u8) -> Option<Producer> {
        let p = if c & PGZIP_BIT != 0 {
            Producer::Pgzip(c & !PGZIP_BIT)
        } else {
            Producer::Go(c)
        };
        (1..=9).contains(&p.level()).then_some(p)
    }

    fn level(self) -> u8 {
        match self {
            Producer::Go(l) | Producer::Pgzip(l) => l,
        }
    }

    /// Payload the producer saw past a token when it chose it (chunk models see the whole
    /// 64 KiB chunk the token is in).
    fn lookahead(self) -> usize {
        match self {
            Producer::Pgzip(5) => fast5::CHUNK_BYTES + predict::LOOKAHEAD,
            _ => predict::LOOKAHEAD,
        }
    }

    /// Payload between checkpoints, at most: levels 7-9 walk longer chains, so the same
    /// payload costs several times more to rebuild there (smaller units balance the cores
    /// and bound the wait for a range's first byte).
    fn checkpoint_plain(self) -> u64 {
        match self.level() {
            7 => crate::CHECKPOINT_PLAIN_BYTES / 2,
            8 | 9 => crate::CHECKPOINT_PLAIN_BYTES / 4,
            _ => crate::CHECKPOINT_PLAIN_BYTES,
        }
    }

    /// A fresh model for a stream starting at payload offset `start`.
    fn model(self, start: usize) -> Model {
        if self == Producer::Pgzip(5) {
            return Model::Fast5(Box::new(fast5::Fast5::new(start)));
        }
        let level = self.level();
        match Model::go(level, start) {
            Some(m) => m,
            // from_code and the callers keep levels in 1..=9.
            None => Model::go(6, start).unwrap_or_else(|| unreachable!()),
        }
    }

    /// Whether the model restarts after this block.
    fn resets_after(self, kind: &deflate::Kind, plain: usize, last: bool) -> bool {
        matches!(self, Producer::Pgzip(_)) && !last && step::is_sync(kind, plain)
    }

    /// Payload of the block that ends at `at` (it started at `prev`) pgzip hands the next
    /// independent block as its dictionary: the last 16 KiB, none if that block was no
    /// longer.
    fn flush_dictionary(prev: usize, at: usize) -> usize {
        if at - prev > PGZIP_DICT_BYTES {
            PGZIP_DICT_BYTES
        } else {
            0
        }
    }

    /// The model of an independent block starting at `at` with `from..at` as its dictionary
    /// (after a flush, see [`Producer::flush_dictionary`]).
    fn model_with_dictionary(self, w: &Window, from: usize, at: usize) -> Model {
        match self {
            Producer::Pgzip(5) => {
                Model::Fast5(Box::new(fast5::Fast5::with_dictionary(w, from, at)))
            }
            _ => match predict::params(self.level()) {
                Some(p) => Model::Chains(Box::new(Chains::with_dictionary(p, w, from, at))),
                None => self.model(at),
            },
        }
    }
}

/// Bytes of the previous block pgzip hands the next as its dictionary.
const PGZIP_DICT_BYTES: usize = 16 * 1024;
