//! [`detect`]: which Go producer made a gzip stream, from its header and a trial split of its
//! first blocks with each candidate model.

use super::{GoSplitter, Producer};
use crate::{
    member::header_len,
    split::{Event, Splitter},
};

/// pgzip's header fingerprint: MTIME 2288912640 (Go's zero time) and OS 255.
pub(crate) fn is_pgzip_header(head: &[u8]) -> bool {
    head.get(4..10) == Some(&[0x00, 0x09, 0x6e, 0x88, 0x00, 0xff][..])
        || head.get(4..10) == Some(&[0x00, 0x09, 0x6e, 0x88, 0x02, 0xff][..])
        || head.get(4..10) == Some(&[0x00, 0x09, 0x6e, 0x88, 0x04, 0xff][..])
}

/// Picks the Go producer of a gzip stream from its first bytes, or `None` if it does not look
/// like one this module rebuilds cheaply. The header must carry OS 255 (Go's); then a trial
/// split of the first blocks runs with each candidate level. A model of Go's compress/flate
/// predicts its own level's streams exactly, so an OS-255 stream from another encoder (flate2
/// writes OS 255 too) is told apart by any difference at all; a stream with pgzip's
/// fingerprint is taken if its reconstruction data stays small.
/// `whole` says whether `head` is the whole stream (else a trial that reaches its end stops
/// there without expecting the stream to end).
pub(crate) fn detect(head: &[u8], whole: bool) -> Option<Producer> {
    let n = header_len(head).ok()??;
    if head[9] != 255 {
        return None;
    }
    let pgzip = is_pgzip_header(head);
    let levels: &[u8] = match head[8] {
        2 => &[9],
        4 => &[1],
        _ if pgzip => &[5, 6, 4, 3, 2, 7, 8, 9, 1],
        _ => &[6, 2, 3, 4, 5, 7, 8],
    };
    // An exact model fails a wrong level at its first difference, so Go trials can afford a
    // long look (which tells levels apart even after a run of stored blocks).
    let trial_bytes = if pgzip {
        PGZIP_TRIAL_BYTES
    } else {
        TRIAL_BYTES
    };
    let trial = &head[..head.len().min(trial_bytes + n)];
    let mut best: Option<(u64, Producer)> = None;
    for &level in levels {
        let producer = if pgzip {
            Producer::Pgzip(level)
        } else {
            Producer::Go(level)
        };
        // A trial measures; the split that follows verifies.
        let mut sp = GoSplitter::trial(producer, TRIAL_STEP_BYTES, !pgzip);
        let mut out = 0u64;
        let mut sink = |e: Event<'_>| {
            if let Event::Step { out: o, .. } = e {
                out += u64::from(o);
            }
            true
        };
        let fed = if whole && trial.len() == head.len() {
            sp.feed(trial, &mut sink)
                .and_then(|()| sp.finish(&mut sink))
        } else {
            sp.feed(trial, &mut sink)
        };
        if fed.is_err() || out == 0 {
            continue;
        }
        // Per mille of the compressed bytes covered.
        let (overhead, diffs) = sp.cost();
        let cost = overhead * 1000 / out;
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, producer));
        }
        if diffs == 0 {
            break;
        }
    }
    let (cost, producer) = best?;
    (cost <= MAX_TRIAL_PER_MILLE).then_some(producer)
}

/// Compressed bytes a trial looks at.
const TRIAL_BYTES: usize = 1024 * 1024;
/// ... for pgzip, whose trials measure differences to the end.
const PGZIP_TRIAL_BYTES: usize = 192 * 1024;
/// Step size during a trial (so that a few steps complete).
const TRIAL_STEP_BYTES: usize = 32 * 1024;
/// Most reconstruction data (per mille of compressed bytes) a trial accepts.
const MAX_TRIAL_PER_MILLE: u64 = 40;

#[cfg(test)]
mod tests {
    use super::{super::split::tests::fixture, *};

    #[test]
    fn go_levels_are_detected() {
        for level in 1..=9u8 {
            let gz = fixture(&format!("gzip_{level}.gz"));
            assert_eq!(
                detect(&gz, true),
                Some(Producer::Go(level)),
                "level {level}"
            );
            // The first bytes of a longer stream (here a second member follows).
            let mut longer = gz.clone();
            longer.extend_from_slice(&gz[..gz.len() / 2]);
            assert_eq!(
                detect(&longer, false),
                Some(Producer::Go(level)),
                "level {level}"
            );
        }
        for level in [1u8, 2, 6] {
            let gz = fixture(&format!("gzip_{level}_flush10000.gz"));
            assert_eq!(
                detect(&gz, true),
                Some(Producer::Go(level)),
                "level {level}"
            );
        }
    }

    #[test]
    fn pgzip_default_level_is_detected() {
        for name in ["pgzip_-1_0.gz", "pgzip_-1_65536.gz"] {
            assert_eq!(
                detect(&fixture(name), true),
                Some(Producer::Pgzip(5)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_damaged_stream_is_not_detected() {
        let mut bad = fixture("gzip_6.gz");
        bad[10] |= 0b110; // BTYPE 3
        assert_eq!(detect(&bad, true), None);
    }
}
