//! Issue 13: reconstruction data is part of the on-disk format. The files in `tests/golden`
//! (see its README) were written by the splitters of an earlier commit; every later version must
//! rebuild each stream from them exactly. A failure here is a format break: restore the old
//! behaviour for the old model version instead of changing the files.
//!
//! `write_golden_reconstruction` is the generator (ignored; run by hand into another directory
//! when a new model version needs fixtures of its own).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use airlock_regzip::{
    Checkpoint, Event, GoSplitter, Limits, PreflateSplitter, Producer, Rebuilder, Splitter,
    choose_splitter, is_goflate,
};
use sha2::{Digest as _, Sha256};

use crate::common::{payload_of, stream};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One op of a fixture.
enum Op {
    Raw(Vec<u8>),
    Checkpoint(Vec<u8>),
    Step {
        plain: usize,
        out: usize,
        data: Vec<u8>,
    },
}

/// A parsed fixture: the stream it rebuilds and its ops.
struct Fixture {
    stream: String,
    ops: Vec<Op>,
}

fn parse(text: &str) -> Fixture {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("regzip golden reconstruction 1"));
    let stream_line: Vec<&str> = lines.next().unwrap().split(' ').collect();
    let payload_line: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!((stream_line[0], payload_line[0]), ("stream", "payload"));
    let gz = stream(stream_line[1]);
    assert_eq!(
        gz.len().to_string(),
        stream_line[2],
        "{} length",
        stream_line[1]
    );
    assert_eq!(sha256(&gz), stream_line[3], "{} changed", stream_line[1]);
    let payload = payload_of(&gz);
    assert_eq!(payload.len().to_string(), payload_line[1]);
    assert_eq!(sha256(&payload), payload_line[2]);
    let ops = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f[0] {
                "raw" => Op::Raw(hex::decode(f[1]).unwrap()),
                "checkpoint" => Op::Checkpoint(hex::decode(f.get(1).unwrap_or(&"")).unwrap()),
                "step" => Op::Step {
                    plain: f[1].parse().unwrap(),
                    out: f[2].parse().unwrap(),
                    data: hex::decode(f[3]).unwrap(),
                },
                other => panic!("unknown op {other:?}"),
            }
        })
        .collect();
    Fixture {
        stream: stream_line[1].to_owned(),
        ops,
    }
}

#[test]
fn issue_13_golden_reconstruction_data_rebuilds_exactly() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 12, "{names:?}");
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let f = parse(&std::fs::read_to_string(&path).unwrap());
        let gz = stream(&f.stream);
        let payload = payload_of(&gz);
        let goflate = !name.starts_with("preflate");
        let (mut rebuilt, mut at) = (Vec::new(), 0);
        let mut rb = Rebuilder::default();
        for op in f.ops {
            match op {
                Op::Raw(bytes) => {
                    rb.reset();
                    rebuilt.extend(bytes);
                }
                Op::Checkpoint(bytes) => {
                    let cp = Checkpoint::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                    rb.checkpoint(&cp).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                Op::Step { plain, out, data } => {
                    assert_eq!(is_goflate(&data), goflate, "{name}: data of the other kind");
                    let mut step = payload[at..at + plain].to_vec();
                    at += plain;
                    let bytes = rb
                        .rebuild_step(&mut step, data)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(bytes.len(), out, "{name}");
                    rebuilt.extend(bytes);
                }
            }
        }
        assert_eq!(at, payload.len(), "{name}: payload left over");
        assert!(rebuilt == gz, "{name}: rebuilt to other bytes");
    }
}

/// Which splitter a fixture's stream goes through.
#[derive(Clone, Copy)]
enum How {
    /// The one `choose_splitter` picks, which must be goflate's.
    Detected,
    /// This Go model, with steps of about this many output bytes.
    Go(Producer, usize),
    /// This Go model, with steps and checkpoints about this many output bytes apart.
    Checkpoints(Producer, usize, u64),
    /// preflate-rs.
    Preflate,
}

const STEP_OUT_BYTES: usize = 256 * 1024;

/// (fixture, stream, splitter): the set in `tests/golden`, written by commit 86ae38e's
/// generator over commit 7f887a0's splitters (goflate model version 1), then the `checkpoints`
/// ones by issue 14's (model version 2).
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
    // Issue 14: checkpoints of every kind of restart, close together.
    (
        "go-l1-checkpoints",
        "go/gzip_1_flush10000.gz",
        How::Checkpoints(Producer::Go(1), 4096, 8192),
    ),
    (
        "go-l2-checkpoints",
        "go/gzip_2.gz",
        How::Checkpoints(Producer::Go(2), 2048, 4096),
    ),
    (
        "go-l6-flush-checkpoints",
        "go/gzip_6_flush10000.gz",
        How::Checkpoints(Producer::Go(6), 4096, 8192),
    ),
    (
        "pgzip-l5-checkpoints",
        "go/pgzip_-1_65536.gz",
        How::Checkpoints(Producer::Pgzip(5), 4096, 8192),
    ),
];

/// The fixture text of one stream.
fn describe(stream_path: &str, gz: &[u8], how: How) -> String {
    let plain = payload_of(gz);
    let mut out = String::new();
    writeln!(out, "regzip golden reconstruction 1").unwrap();
    writeln!(out, "stream {stream_path} {} {}", gz.len(), sha256(gz)).unwrap();
    writeln!(out, "payload {} {}", plain.len(), sha256(&plain)).unwrap();
    let mut emitted = 0usize;
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Raw(b) => writeln!(out, "raw {}", hex::encode(b)).unwrap(),
            Event::Checkpoint(c) => writeln!(out, "checkpoint {}", hex::encode(c)).unwrap(),
            Event::Plain(p) => emitted += p.len(),
            Event::Step {
                plain,
                out: o,
                data,
            } => {
                if matches!(how, How::Detected) {
                    assert!(is_goflate(&data), "{stream_path} was not detected as Go's");
                }
                writeln!(out, "step {plain} {o} {}", hex::encode(data)).unwrap();
            }
        }
        true
    };
    let mut splitter: Box<dyn Splitter> = match how {
        How::Detected => choose_splitter(gz, true, Limits::UNLIMITED),
        How::Go(p, step) => Box::new(GoSplitter::with_step(p, Limits::UNLIMITED, step)),
        How::Checkpoints(p, step, every) => {
            Box::new(GoSplitter::with_step(p, Limits::UNLIMITED, step).with_checkpoints(every))
        }
        How::Preflate => Box::new(PreflateSplitter::new(Limits::UNLIMITED)),
    };
    splitter.feed(gz, &mut sink).unwrap();
    splitter.finish(&mut sink).unwrap();
    assert_eq!(emitted, plain.len(), "{stream_path}");
    out
}

#[test]
#[ignore = "writes golden fixtures into $REGZIP_WRITE_GOLDEN (never into tests/golden)"]
fn write_golden_reconstruction() {
    let dir = PathBuf::from(std::env::var_os("REGZIP_WRITE_GOLDEN").unwrap());
    assert_ne!(
        dir.canonicalize().unwrap(),
        golden_dir().canonicalize().unwrap(),
        "committed fixtures are never regenerated"
    );
    for &(name, stream_path, how) in FIXTURES {
        let text = describe(stream_path, &stream(stream_path), how);
        std::fs::write(Path::new(&dir).join(format!("{name}.txt")), text).unwrap();
    }
}
