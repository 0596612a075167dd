//! Splitting a gzip stream into its decompressed payload plus a little reconstruction data, and
//! rebuilding the stream from them bit for bit.
//!
//! A [`Splitter`] takes the compressed bytes as they stream in and emits [`Event`]s: member
//! headers and trailers as raw bytes, the payload, and one step per slice of each deflate stream
//! (the payload bytes it covers and the reconstruction data that turns them back into its
//! compressed bytes). Two kinds of splitters share one gzip member state machine: preflate-rs
//! predicts the zlib family (GNU gzip, pigz, zlib, zlib-ng, miniz), and goflate, our own models of
//! Go's compress/flate (levels 1-9) and klauspost/pgzip (its default level), predicts what Go
//! programs write. Every step is rebuilt on a verifier thread while the split goes on and compared
//! with the input it came from, so a split that finishes has proven that its events rebuild the
//! stream exactly. A stream that cannot be split (another encoder, damaged members, a
//! decompression bomb, a panic inside preflate-rs or goflate) ends the split with an [`Error`]
//! saying why, and the caller keeps the compressed bytes as they are. A [`Rebuilder`] turns steps
//! back into compressed bytes, telling the two kinds of reconstruction data apart by their bytes.
//!
//! About every [`CHECKPOINT_OUT_BYTES`] of compressed output (or [`CHECKPOINT_PLAIN_BYTES`] of
//! payload, when that comes first) a splitter emits a [`Checkpoint`] (issue 14): a place where
//! rebuilding may start without the steps before it, given a little payload before it, so that
//! one stream rebuilds on several cores and a range read starts near its first byte. Inside a
//! goflate stream the model restarts there from a canonical state, at the split as at every
//! rebuild, and the verifier rebuilds through the same restart; preflate-rs cannot restart
//! inside a stream, so the zlib family's only checkpoints are gzip member starts (a
//! single-member GNU gzip or pigz stream rebuilds from its start, on one core).
//!
//! This crate knows nothing of stores, chunks, scripts, digests or OCI: it reads bytes and hands
//! out events, and the caller decides where payload and reconstruction data live. Only the
//! `preflate` module imports preflate-rs. Reconstruction data outlives the code that wrote it:
//! goflate data carries its [`MODEL_VERSION`] in its first bytes, and preflate-rs data is tied to
//! [`PREFLATE_VERSION`], which the caller records beside it; golden fixtures in `tests/golden`
//! pin both.
//!
//! # Overview
//! - [`choose_splitter`]: the splitter for a stream, from its first [`DETECT_BYTES`]
//!   ([`detect_producer`]: the Go producer it finds).
//! - [`Splitter`], implemented by [`PreflateSplitter`] and [`GoSplitter`] (a [`Producer`]'s
//!   model); [`Event`]s go to a [`Sink`]; [`Limits`] stop decompression bombs.
//! - [`Rebuilder`]: rebuilds steps, either kind; [`is_goflate`] tells the kinds apart.
//! - [`Checkpoint`]: where a rebuild may start ([`Rebuilder::resume`]) or passes through
//!   ([`Rebuilder::checkpoint`]).
//! - [`Error`]: why a stream is not split or a step not rebuilt.
//!
//! ```
//! use std::io::Write;
//!
//! use airlock_regzip::{Checkpoint, Event, Limits, Rebuilder, choose_splitter};
//!
//! let text: String = (0..20_000u32).map(|i| format!("{i} squared is {}\n", i * i)).collect();
//! let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
//! gz.write_all(text.as_bytes()).unwrap();
//! let gz = gz.finish().unwrap();
//!
//! let mut splitter = choose_splitter(&gz, true, Limits::UNLIMITED);
//! let mut rebuilder = Rebuilder::default();
//! let (mut pending, mut rebuilt) = (Vec::new(), Vec::new());
//! let mut sink = |e: Event<'_>| {
//!     match e {
//!         Event::Raw(bytes) => {
//!             rebuilder.reset();
//!             rebuilt.extend_from_slice(bytes);
//!         }
//!         // Going through a checkpoint in order: the model restarts as the split's did.
//!         Event::Checkpoint(state) => {
//!             rebuilder.checkpoint(&Checkpoint::decode(&state).unwrap()).unwrap();
//!         }
//!         Event::Plain(plain) => pending.extend(plain),
//!         Event::Step { plain, data, .. } => {
//!             // A step covers the payload emitted since the previous step.
//!             let mut step = std::mem::take(&mut pending);
//!             assert_eq!(step.len(), plain as usize);
//!             rebuilt.extend(rebuilder.rebuild_step(&mut step, data).unwrap());
//!         }
//!     }
//!     true
//! };
//! splitter.feed(&gz, &mut sink).unwrap();
//! splitter.finish(&mut sink).unwrap();
//! assert_eq!(rebuilt, gz);
//! ```

mod checkpoint;
mod error;
mod goflate;
mod member;
mod preflate;
mod rebuild;
mod split;
mod verify;

pub use crate::{
    checkpoint::Checkpoint,
    error::Error,
    goflate::{GoSplitter, MODEL_VERSION, Producer},
    preflate::{PREFLATE_VERSION, PreflateSplitter},
    rebuild::{Rebuilder, is_goflate},
    split::{
        CHECKPOINT_OUT_BYTES, CHECKPOINT_PLAIN_BYTES, DETECT_BYTES, Event, Limits, Sink, Splitter,
        choose_splitter, detect_producer,
    },
};
