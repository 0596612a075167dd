//! The [`Splitter`] trait, the [`Event`]s splitters emit, and [`choose_splitter`], which picks
//! goflate for a stream a Go program wrote and preflate-rs for any other.

use crate::{
    Error, Producer,
    goflate::{GoSplitter, detect, is_pgzip_header},
    preflate::PreflateSplitter,
};

/// Bytes of a stream's start [`choose_splitter`] looks at (the goflate trials run over them).
pub const DETECT_BYTES: usize = 1024 * 1024;

/// Compressed output between checkpoints, about: a stream shorter than this has none.
pub const CHECKPOINT_OUT_BYTES: u64 = 1024 * 1024;

/// Payload between checkpoints, at most about (the next step after this much starts at one):
/// a rebuild's cost follows the payload, so highly compressible data gets checkpoints closer in
/// its output (for Go's levels 7-9, whose payload costs more, a half and a quarter of it).
pub const CHECKPOINT_PLAIN_BYTES: u64 = 4 * 1024 * 1024;

/// What a splitter found, in stream order.
#[derive(Debug)]
pub enum Event<'a> {
    /// Bytes kept as they are: gzip member headers and trailers, bytes after the last member.
    Raw(&'a [u8]),
    /// Decompressed payload.
    Plain(Vec<u8>),
    /// One step of a deflate stream: the `plain` payload bytes emitted since the previous step
    /// and `data` rebuild `out` compressed bytes. The first step after a `Raw` starts a new
    /// deflate stream; the next ones continue it.
    Step {
        /// Payload bytes the step covers.
        plain: u32,
        /// Compressed bytes it rebuilds.
        out: u32,
        /// Its reconstruction data (goflate's or preflate-rs's, see [`crate::is_goflate`]).
        data: Vec<u8>,
    },
    /// A checkpoint (see [`crate::Checkpoint`]): what follows may be rebuilt without what came
    /// before, from these bytes and the payload before it. It comes before the payload of the
    /// step it starts (inside a goflate stream), or before the raw header of a gzip member
    /// (then it holds no bytes). A rebuild going through it in order passes it to
    /// [`crate::Rebuilder::checkpoint`]; one starting there, to [`crate::Rebuilder::resume`].
    Checkpoint(Vec<u8>),
}

/// Where a splitter sends its events; returning `false` stops the split ([`Error::Stopped`]).
pub type Sink<'a> = dyn FnMut(Event<'_>) -> bool + 'a;

/// Limits on the decompressed payload (decompression bombs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most payload bytes.
    pub max_plain: u64,
    /// Most payload bytes per compressed byte (the compressed bytes counted as at least 1 MiB).
    pub max_ratio: u32,
}

impl Limits {
    /// No limit at all (for trusted input).
    pub const UNLIMITED: Limits = Limits {
        max_plain: u64::MAX,
        max_ratio: u32::MAX,
    };
}

/// A push parser that splits a gzip stream into [`Event`]s as its bytes arrive, in slices of
/// any size. Memory stays bounded (tens of MB) whatever the stream's size. A panic inside the
/// splitter is caught and ends the split ([`Error::Panicked`]); after any error, the splitter
/// takes nothing more.
pub trait Splitter {
    /// Takes the next compressed bytes.
    fn feed(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Result<(), Error>;

    /// The input ended: emits what is left, waits for every step's verification, and fails
    /// unless the stream ended cleanly after a member.
    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error>;
}

/// The Go producer whose model [`choose_splitter`] would run for a stream starting with `head`
/// (see there), if any.
pub fn detect_producer(head: &[u8], whole: bool) -> Option<Producer> {
    detect(head, whole)
}

/// The splitter for a gzip stream, chosen from its first bytes (`head`: [`DETECT_BYTES`] of
/// them, or fewer when `whole` says they are the whole stream): a [`GoSplitter`] with the model
/// of the Go producer whose trial over them fits, else a [`PreflateSplitter`]. It stays on the
/// thread that made it (preflate-rs's state is not `Send`).
pub fn choose_splitter(head: &[u8], whole: bool, limits: Limits) -> Box<dyn Splitter> {
    match detect(head, whole) {
        Some(producer) => {
            tracing::debug!(?producer, "splitting a gzip stream made by Go");
            Box::new(GoSplitter::new(producer, limits))
        }
        None => Box::new(PreflateSplitter::for_header(head, limits)),
    }
}

impl PreflateSplitter {
    /// A preflate-rs splitter for a stream starting with `head`: when it carries pgzip's
    /// fingerprint, an encoder preflate-rs cannot predict is a Go one goflate did not match.
    fn for_header(head: &[u8], limits: Limits) -> PreflateSplitter {
        let s = PreflateSplitter::new(limits);
        if is_pgzip_header(head) {
            s.go_header()
        } else {
            s
        }
    }
}
