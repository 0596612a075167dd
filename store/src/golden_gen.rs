//! Writes the golden reconstruction fixtures of `regzip/tests/golden/` (issue 13): for each
//! committed gzip stream and model, the ops a split emits (raw bytes, and steps with their
//! payload length, output length and reconstruction data), as text. Run only by hand:
//!
//! ```text
//! REGZIP_WRITE_GOLDEN=DIR cargo test -p airlock-store --lib golden_gen -- --ignored
//! ```

#![allow(clippy::unwrap_used)] // a generator: a failed unwrap is a failed run

use std::{fmt::Write as _, io::Read, path::Path};

use sha2::{Digest as _, Sha256};

use crate::{
    goflate::{GoSplitter, Producer, STEP_OUT_BYTES, detect},
    gzip::{Event, GzipSplitter, Limits},
};

const NO_LIMITS: Limits = Limits {
    max_plain: u64::MAX,
    max_ratio: u32::MAX,
};

/// Which splitter a fixture's stream goes through.
#[derive(Clone, Copy)]
enum How {
    /// The producer `detect` picks (a Go stream).
    Detected,
    /// This Go model, with steps of about this many output bytes.
    Go(Producer, usize),
    /// preflate-rs.
    Preflate,
}

/// (fixture name, stream under store/tests/fixtures/, splitter).
const FIXTURES: &[(&str, &str, How)] = &[
    ("go-l1", "go/gzip_1.gz", How::Detected),
    (
        "go-l6-small-steps",
        "go/gzip_6.gz",
        How::Go(Producer::Go(6), 8 * 1024),
    ),
    ("go-l2-flush", "go/gzip_2_flush10000.gz", How::Detected),
    // A model one level off: its differences are recorded (tokens and Huffman headers).
    (
        "go-l6-by-l7-model",
        "go/gzip_6.gz",
        How::Go(Producer::Go(7), STEP_OUT_BYTES),
    ),
    (
        "go-l8-by-l9-model",
        "go/gzip_8.gz",
        How::Go(Producer::Go(9), STEP_OUT_BYTES),
    ),
    ("pgzip-l5", "go/pgzip_-1_65536.gz", How::Detected),
    (
        "preflate-zlib-rs-l6",
        "flate2/zlib-rs-l6.tar.gz",
        How::Preflate,
    ),
    (
        "preflate-zlib-rs-multi",
        "flate2/zlib-rs-multi.tar.gz",
        How::Preflate,
    ),
];

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The fixture text of one stream.
fn describe(stream: &str, gz: &[u8], how: How) -> String {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut plain)
        .unwrap();
    let mut out = String::new();
    writeln!(out, "regzip golden reconstruction 1").unwrap();
    writeln!(out, "stream {stream} {} {}", gz.len(), sha256(gz)).unwrap();
    writeln!(out, "payload {} {}", plain.len(), sha256(&plain)).unwrap();
    let mut emitted = 0usize;
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Raw(b) => writeln!(out, "raw {}", hex::encode(b)).unwrap(),
            Event::Plain(p) => emitted += p.len(),
            Event::Step {
                plain,
                out: o,
                corrections,
            } => writeln!(out, "step {plain} {o} {}", hex::encode(corrections)).unwrap(),
        }
        true
    };
    match how {
        How::Preflate => {
            let mut s = GzipSplitter::new(NO_LIMITS);
            s.feed(gz, &mut sink).unwrap();
            s.finish(&mut sink).unwrap();
        }
        How::Detected | How::Go(..) => {
            let (producer, step) = match how {
                How::Go(p, step) => (p, step),
                _ => (detect(gz, true).unwrap(), STEP_OUT_BYTES),
            };
            let mut s = GoSplitter::with_step(producer, NO_LIMITS, step);
            s.feed(gz, &mut sink).unwrap();
            s.finish(&mut sink).unwrap();
        }
    }
    assert_eq!(emitted, plain.len(), "{stream}");
    out
}

#[test]
#[ignore = "writes the golden fixtures into $REGZIP_WRITE_GOLDEN; never run by CI"]
fn write_golden_reconstruction() {
    let dir = std::env::var_os("REGZIP_WRITE_GOLDEN").unwrap();
    let streams = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for &(name, stream, how) in FIXTURES {
        let gz = std::fs::read(streams.join(stream)).unwrap();
        let text = describe(stream, &gz, how);
        std::fs::write(Path::new(&dir).join(format!("{name}.txt")), text).unwrap();
    }
}
