//! Faults: a panic inside a split is caught and ends it the same way for both kinds of
//! splitter (the caller keeps the stream as it is, the process goes on); a sink that refuses
//! stops the split; limits stop decompression bombs; damaged reconstruction data fails to
//! rebuild, never panics, and data from a later goflate model is named as such.

use airlock_regzip::{
    Error, Event, GoSplitter, Limits, MODEL_VERSION, PreflateSplitter, Producer, Rebuilder,
    Splitter,
};

use crate::common::{split_and_rebuild, stream};

type MakeSplitter = Box<dyn Fn(Limits) -> Box<dyn Splitter>>;

/// One stream of each kind with its splitter.
fn both_kinds() -> Vec<(&'static str, Vec<u8>, MakeSplitter)> {
    vec![
        (
            "goflate",
            stream("go/gzip_6.gz"),
            Box::new(|l| -> Box<dyn Splitter> { Box::new(GoSplitter::new(Producer::Go(6), l)) }),
        ),
        (
            "preflate-rs",
            stream("flate2/zlib-rs-l6.tar.gz"),
            Box::new(|l| -> Box<dyn Splitter> { Box::new(PreflateSplitter::new(l)) }),
        ),
    ]
}

#[test]
fn a_panic_during_a_split_ends_it_alike_for_both_kinds() {
    for (kind, gz, make) in both_kinds() {
        let mut splitter = make(Limits::UNLIMITED);
        // The sink is the seam: it runs inside the split, as the splitter's own code does.
        let mut sink = |e: Event<'_>| {
            if matches!(e, Event::Step { .. }) {
                panic!("a fault injected into the {kind} split");
            }
            true
        };
        let fed = splitter
            .feed(&gz, &mut sink)
            .and_then(|()| splitter.finish(&mut sink));
        assert!(
            matches!(fed, Err(Error::Panicked { .. })),
            "{kind}: {fed:?}"
        );
        // The splitter takes nothing more.
        let again = splitter.finish(&mut |_| true);
        assert_eq!(again, fed, "{kind}");
    }
}

#[test]
fn a_sink_that_refuses_stops_the_split() {
    for (kind, gz, make) in both_kinds() {
        let mut splitter = make(Limits::UNLIMITED);
        let mut sink = |e: Event<'_>| !matches!(e, Event::Plain(_));
        let fed = splitter
            .feed(&gz, &mut sink)
            .and_then(|()| splitter.finish(&mut sink));
        assert_eq!(fed, Err(Error::Stopped), "{kind}");
    }
}

#[test]
fn decompression_bombs_are_stopped_by_either_limit() {
    let by_size = Limits {
        max_plain: 100_000,
        max_ratio: u32::MAX,
    };
    let by_ratio = Limits {
        max_plain: u64::MAX,
        max_ratio: 1,
    };
    // About 9 MB of text that compresses well (a split sees it expand past its input).
    let bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        for i in 0..400_000u64 {
            writeln!(e, "{i} squared is {}", i * i).unwrap();
        }
        e.finish().unwrap()
    };
    for (kind, gz, make) in both_kinds() {
        let got = split_and_rebuild(make(by_size), &gz, 1 << 16).map(|_| ());
        assert_eq!(got, Err(Error::DecompressionLimit), "{kind} by size");
        let got = split_and_rebuild(make(by_ratio), &bomb, 1 << 16).map(|_| ());
        assert_eq!(got, Err(Error::DecompressionLimit), "{kind} by ratio");
    }
}

/// Every step of a goflate split: (payload, data).
fn go_steps() -> Vec<(Vec<u8>, Vec<u8>)> {
    let gz = stream("go/gzip_6_flush10000.gz");
    let mut splitter =
        GoSplitter::with_step(Producer::Go(6), Limits::UNLIMITED, 4096).with_checkpoints(0);
    let (mut steps, mut pending) = (Vec::new(), Vec::new());
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Plain(p) => pending.extend(p),
            Event::Step { data, .. } => steps.push((std::mem::take(&mut pending), data)),
            Event::Raw(_) | Event::Checkpoint(_) => {}
        }
        true
    };
    splitter.feed(&gz, &mut sink).unwrap();
    splitter.finish(&mut sink).unwrap();
    steps
}

#[test]
fn damaged_reconstruction_data_fails_to_rebuild_without_panicking() {
    let steps = go_steps();
    assert!(steps.len() > 3);
    for at in [3, 4, 5, 6, 9, 17] {
        let mut rb = Rebuilder::default();
        for (k, (plain, data)) in steps.iter().enumerate() {
            let mut data = data.clone();
            if k == 1 && at < data.len() {
                data[at] ^= 0x5a;
            }
            let mut plain = plain.clone();
            // Anything but a panic: other bytes are caught by whoever checks the digest.
            if rb.rebuild_step(&mut plain, data).is_err() {
                break;
            }
        }
    }
    // preflate-rs data that is not preflate-rs data.
    let mut plain = b"some payload".to_vec();
    let got = Rebuilder::default().rebuild_step(&mut plain, b"junk".to_vec());
    assert!(matches!(got, Err(Error::Damaged { .. })), "{got:?}");
}

#[test]
fn data_of_a_later_goflate_model_is_named_not_misread() {
    let (plain, mut data) = go_steps().remove(0);
    data[3] = MODEL_VERSION + 1;
    let got = Rebuilder::default().rebuild_step(&mut plain.clone(), data);
    assert_eq!(
        got,
        Err(Error::ModelUnknown {
            found: MODEL_VERSION + 1,
            known: MODEL_VERSION
        })
    );
}
