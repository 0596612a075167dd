//! gzip member framing (RFC 1952) shared by the two splitters (`gzip` for preflate-rs,
//! `goflate::split` for Go producers): where a member header ends, and what comes between
//! deflate streams: the 8-byte trailer, the next member's header, or bytes after the last
//! member. Framing bytes are emitted as they are.

use crate::{
    gzip::{Event, Halt},
    layer::OpaqueReason,
};

/// Longest gzip header accepted (FEXTRA, FNAME and FCOMMENT included).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most bytes accepted after the last member (zero padding some tools add).
const MAX_TAIL_BYTES: u64 = 1024 * 1024;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Where a splitter is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Header,
    Deflate,
    Trailer,
    Between,
    Tail,
}

/// Length of a complete gzip member header at the start of `b`; `Ok(None)` if more is
/// needed, `Err(())` if it is not a gzip header.
pub(crate) fn header_len(b: &[u8]) -> Result<Option<usize>, ()> {
    if b.len() < 10 {
        return Ok(None);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] & FRESERVED != 0 {
        return Err(());
    }
    let flags = b[3];
    let mut i = 10;
    if flags & FEXTRA != 0 {
        let Some(x) = b.get(i..i + 2) else {
            return Ok(None);
        };
        i += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match b.get(i..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(p) => i += p + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        i += 2;
    }
    Ok((b.len() >= i).then_some(i))
}

/// Hands an event to the sink; a sink that refuses stops the split.
pub(crate) fn emit(sink: &mut impl FnMut(Event<'_>) -> bool, e: Event<'_>) -> Result<(), Halt> {
    if sink(e) { Ok(()) } else { Err(Halt::Stopped) }
}

/// Advances through the framing after a deflate stream (`Trailer`, `Between`, `Tail`),
/// emitting it. `Ok(true)`: go on with the new state; `Ok(false)`: wait for more input.
pub(crate) fn step_between_members(
    state: &mut State,
    pending: &mut Vec<u8>,
    tail: &mut u64,
    eof: bool,
    sink: &mut impl FnMut(Event<'_>) -> bool,
) -> Result<bool, Halt> {
    let malformed = Halt::Opaque(OpaqueReason::GzipMalformed);
    match state {
        State::Trailer => {
            if pending.len() < 8 {
                return if eof { Err(malformed) } else { Ok(false) };
            }
            emit(sink, Event::Raw(&pending[..8]))?;
            pending.drain(..8);
            *state = State::Between;
            Ok(true)
        }
        State::Between => {
            if pending.is_empty() || (!eof && pending.len() < 3) {
                return Ok(false);
            }
            *state = if pending.starts_with(&[0x1f, 0x8b, 8]) {
                State::Header
            } else {
                State::Tail
            };
            Ok(true)
        }
        State::Tail => {
            *tail += pending.len() as u64;
            if *tail > MAX_TAIL_BYTES {
                return Err(malformed);
            }
            for piece in pending.chunks(64 * 1024) {
                emit(sink, Event::Raw(piece))?;
            }
            pending.clear();
            Ok(false)
        }
        State::Header | State::Deflate => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_every_optional_field() {
        let mut h = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            255,
        ];
        assert_eq!(header_len(&h), Ok(None));
        h.extend_from_slice(&[2, 0, 9, 9]);
        h.extend_from_slice(b"name\0comment\0");
        assert_eq!(header_len(&h), Ok(None), "the header CRC is missing");
        h.extend_from_slice(&[1, 2]);
        assert_eq!(header_len(&h), Ok(Some(h.len())));
        h[3] |= 0x80;
        assert_eq!(header_len(&h), Err(()));
        assert_eq!(header_len(b"not gzip at all"), Err(()));
    }
}
