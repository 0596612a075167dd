//! Integration tests of airlock-regzip through its public API.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod checkpoints; // issue 14: each checkpoint rebuilds alone, exactly; restarts cost little; damage fails cleanly
mod common; // the committed gzip streams (store/tests/fixtures), split-and-rebuild helpers
mod faults; // panics in a split or a rebuild are caught; damaged data fails cleanly; sinks stop
mod golden; // issue 13: reconstruction data written by earlier code rebuilds exactly, forever
mod streams; // issues 3 and 6: each committed stream's splitter, outcome and data, in any slices
