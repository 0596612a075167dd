//! Issue 14: checkpoints. Every producer's stream, split with checkpoints close together, rebuilds
//! exactly from each checkpoint on its own (segments in shuffled order, each from the payload it
//! names), and in order through them; the canonical restart costs lazy Go levels nothing and the
//! others little; damaged checkpoints fail cleanly.

use airlock_regzip::{
    Checkpoint, Error, Event, GoSplitter, Limits, PreflateSplitter, Producer, Rebuilder, Splitter,
};

use crate::common::{payload_of, split_and_rebuild, stream};

/// One event of a split, with where it is in the payload and the output.
#[derive(Clone, Debug)]
enum Rec {
    Raw(Vec<u8>),
    Checkpoint {
        state: Vec<u8>,
        /// Payload offset of the step it starts.
        plain_at: usize,
    },
    Step {
        plain_at: usize,
        plain: usize,
        out: usize,
        data: Vec<u8>,
    },
}

/// The events of a split, in order.
fn record(mut splitter: Box<dyn Splitter>, gz: &[u8]) -> Vec<Rec> {
    let (mut recs, mut plain_at, mut pending) = (Vec::new(), 0usize, 0usize);
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Raw(b) => recs.push(Rec::Raw(b.to_vec())),
            Event::Checkpoint(state) => recs.push(Rec::Checkpoint {
                state,
                plain_at: plain_at + pending,
            }),
            Event::Plain(p) => pending += p.len(),
            Event::Step { plain, out, data } => {
                assert_eq!(plain as usize, pending);
                recs.push(Rec::Step {
                    plain_at,
                    plain: pending,
                    out: out as usize,
                    data,
                });
                plain_at += pending;
                pending = 0;
            }
        }
        true
    };
    for piece in gz.chunks(100_000) {
        splitter.feed(piece, &mut sink).unwrap();
    }
    splitter.finish(&mut sink).unwrap();
    recs
}

/// The events cut at every checkpoint: (output offset, events), the first from the start.
fn segments(recs: &[Rec]) -> Vec<(usize, Vec<Rec>)> {
    let mut segs: Vec<(usize, Vec<Rec>)> = vec![(0, Vec::new())];
    let mut out = 0;
    for r in recs {
        if matches!(r, Rec::Checkpoint { .. }) {
            segs.push((out, Vec::new()));
        }
        out += match r {
            Rec::Raw(b) => b.len(),
            Rec::Step { out, .. } => *out,
            Rec::Checkpoint { .. } => 0,
        };
        if let Some((_, seg)) = segs.last_mut() {
            seg.push(r.clone());
        }
    }
    segs
}

/// Rebuilds one segment on its own, from the payload.
fn rebuild_segment(seg: &[Rec], payload: &[u8]) -> Result<Vec<u8>, Error> {
    let mut rb = Rebuilder::default();
    let mut out = Vec::new();
    for (k, r) in seg.iter().enumerate() {
        match r {
            Rec::Checkpoint { state, plain_at } => {
                assert_eq!(k, 0, "a checkpoint starts its segment");
                let cp = Checkpoint::decode(state)?;
                let history = usize::try_from(cp.history()).unwrap();
                rb.resume(&cp, &payload[plain_at - history..*plain_at])?;
            }
            Rec::Raw(b) => {
                rb.reset();
                out.extend_from_slice(b);
            }
            Rec::Step {
                plain_at,
                plain,
                data,
                ..
            } => {
                let mut step = payload[*plain_at..plain_at + plain].to_vec();
                out.extend(rb.rebuild_step(&mut step, data.clone())?);
            }
        }
    }
    Ok(out)
}

/// Rebuilds every segment on its own, in a shuffled order, and puts the stream together.
fn rebuild_shuffled(recs: &[Rec], payload: &[u8], seed: u64) -> Vec<u8> {
    let segs = segments(recs);
    let mut order: Vec<usize> = (0..segs.len()).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut parts = vec![Vec::new(); segs.len()];
    for i in order {
        parts[i] = rebuild_segment(&segs[i].1, payload).unwrap();
    }
    let mut whole = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        assert_eq!(
            whole.len(),
            segs[i].0,
            "segment {i} starts where the last one ended"
        );
        whole.extend(part);
    }
    whole
}

/// Bytes of step data, and of checkpoints.
fn data_bytes(recs: &[Rec]) -> (usize, usize) {
    recs.iter().fold((0, 0), |(d, c), r| match r {
        Rec::Step { data, .. } => (d + data.len(), c),
        Rec::Checkpoint { state, .. } => (d, c + state.len()),
        Rec::Raw(_) => (d, c),
    })
}

fn go(producer: Producer, step: usize, every: u64) -> Box<dyn Splitter> {
    Box::new(GoSplitter::with_step(producer, Limits::UNLIMITED, step).with_checkpoints(every))
}

const GO_STREAMS: &[(&str, Producer)] = &[
    ("go/gzip_1.gz", Producer::Go(1)),
    ("go/gzip_2.gz", Producer::Go(2)),
    ("go/gzip_3.gz", Producer::Go(3)),
    ("go/gzip_4.gz", Producer::Go(4)),
    ("go/gzip_5.gz", Producer::Go(5)),
    ("go/gzip_6.gz", Producer::Go(6)),
    ("go/gzip_7.gz", Producer::Go(7)),
    ("go/gzip_8.gz", Producer::Go(8)),
    ("go/gzip_9.gz", Producer::Go(9)),
    ("go/gzip_1_flush10000.gz", Producer::Go(1)),
    ("go/gzip_2_flush10000.gz", Producer::Go(2)),
    ("go/gzip_6_flush10000.gz", Producer::Go(6)),
    ("go/pgzip_-1_65536.gz", Producer::Pgzip(5)),
    // Other pgzip levels run a Go model, restarted at each flush.
    ("go/pgzip_9_65536.gz", Producer::Pgzip(9)),
];

#[test]
fn issue_14_every_go_stream_rebuilds_from_each_checkpoint_alone() {
    for (seed, &(path, producer)) in GO_STREAMS.iter().enumerate() {
        let gz = stream(path);
        let payload = payload_of(&gz);
        let recs = record(go(producer, 2048, 4096), &gz);
        let n = recs
            .iter()
            .filter(|r| matches!(r, Rec::Checkpoint { .. }))
            .count();
        // Go's blocks at levels 2-9 hold up to 16,384 tokens: a 40 KB stream has few.
        assert!(n >= 2, "{path}: {n} checkpoints");
        for r in &recs {
            if let Rec::Checkpoint { state, .. } = r {
                let history = Checkpoint::decode(state).unwrap().history();
                assert!(history <= 2 * 65535 + 262, "{path}: {history}");
            }
        }
        assert!(
            rebuild_shuffled(&recs, &payload, seed as u64) == gz,
            "{path}"
        );
        // In order, through the checkpoints.
        let s = split_and_rebuild(go(producer, 2048, 4096), &gz, 7777).unwrap();
        assert!(s.rebuilt == gz, "{path}");
        assert_eq!(s.checkpoints, n, "{path}");
    }
}

#[test]
fn issue_14_lazy_go_levels_restart_at_their_own_state() {
    // Levels 4-9 hash every position: the canonical state at a checkpoint is Go's, so the
    // steps' data is what it is without checkpoints (steps are cut at the same places).
    for level in 4..=9u8 {
        let gz = stream(&format!("go/gzip_{level}.gz"));
        let with = record(go(Producer::Go(level), 2048, 4096), &gz);
        let without = record(go(Producer::Go(level), 2048, 0), &gz);
        let ((d_with, c_with), (d_without, _)) = (data_bytes(&with), data_bytes(&without));
        assert_eq!(d_with, d_without, "level {level}");
        assert!(c_with > 0, "level {level}");
    }
}

#[test]
fn issue_14_a_restart_unlike_the_encoder_costs_differences_not_exactness() {
    // Levels 1-3 restart in a state that need not be the encoder's (level 1 warms its table over
    // the blocks before, levels 2-3 their chains over 96 KiB): what differs is recorded, the
    // rebuild stays exact from every checkpoint, and it costs little.
    for (path, producer) in [
        ("go/gzip_1.gz", Producer::Go(1)),
        ("go/gzip_1_flush10000.gz", Producer::Go(1)),
        ("go/gzip_2.gz", Producer::Go(2)),
        ("go/gzip_2_flush10000.gz", Producer::Go(2)),
        ("go/gzip_3.gz", Producer::Go(3)),
    ] {
        let gz = stream(path);
        let payload = payload_of(&gz);
        let with = record(go(producer, 2048, 2048), &gz);
        let without = record(go(producer, 2048, 0), &gz);
        let ((d_with, c_with), (d_without, _)) = (data_bytes(&with), data_bytes(&without));
        let n = with
            .iter()
            .filter(|r| matches!(r, Rec::Checkpoint { .. }))
            .count();
        eprintln!("{path}: step data {d_without} B, with {n} checkpoints {d_with} B + {c_with} B");
        // At most a few hundred bytes a checkpoint (greedy levels warm up without the flushes
        // Go made, the costliest case here), against a megabyte of output between two.
        assert!(
            d_with <= d_without + 256 * n,
            "{path}: {d_with} + {c_with} vs {d_without}"
        );
        assert!(rebuild_shuffled(&with, &payload, 7) == gz, "{path}");
    }
    // A model restarted far from the encoder's state (the wrong level): many differences, still
    // exact.
    let gz = stream("go/gzip_6.gz");
    let recs = record(go(Producer::Go(2), 2048, 2048), &gz);
    assert!(data_bytes(&recs).0 > 1000);
    assert!(rebuild_shuffled(&recs, &payload_of(&gz), 3) == gz);
}

#[test]
fn issue_14_multi_member_streams_have_member_checkpoints() {
    // preflate-rs cannot restart inside a stream: its checkpoints are member starts.
    let one = stream("flate2/zlib-rs-l6.tar.gz");
    let payload1 = payload_of(&one);
    let whole = record(Box::new(PreflateSplitter::new(Limits::UNLIMITED)), &one);
    assert!(!whole.iter().any(|r| matches!(r, Rec::Checkpoint { .. })));
    let mut gz = one.clone();
    gz.extend_from_slice(&one);
    gz.extend_from_slice(&one);
    let payload = [&payload1[..], &payload1, &payload1].concat();
    let splitters: [Box<dyn Splitter>; 2] = [
        Box::new(PreflateSplitter::new(Limits::UNLIMITED).with_checkpoints(1)),
        go(Producer::Go(6), 1 << 20, 1),
    ];
    for (k, splitter) in splitters.into_iter().enumerate() {
        let gz = if k == 0 {
            gz.clone()
        } else {
            [stream("go/gzip_6.gz"), stream("go/gzip_6.gz")].concat()
        };
        let payload = if k == 0 {
            payload.clone()
        } else {
            payload_of(&gz)
        };
        let recs = record(splitter, &gz);
        let members = recs
            .iter()
            .filter(|r| matches!(r, Rec::Checkpoint { state, .. } if state.is_empty()))
            .count();
        assert_eq!(members, if k == 0 { 2 } else { 1 }, "splitter {k}");
        assert!(rebuild_shuffled(&recs, &payload, 11) == gz, "splitter {k}");
    }
}

#[test]
fn issue_14_compressible_streams_have_checkpoints_by_payload() {
    // 40 MB of zeros in about 40 KB: a checkpoint every few megabytes of payload (a rebuild's
    // cost), with the default spacing, where the output alone would make none.
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&vec![0u8; 40 << 20]).unwrap();
    let gz = e.finish().unwrap();
    let payload = vec![0u8; 40 << 20];
    let splitter = Box::new(GoSplitter::new(Producer::Go(6), Limits::UNLIMITED));
    let recs = record(splitter, &gz);
    let n = recs
        .iter()
        .filter(|r| matches!(r, Rec::Checkpoint { .. }))
        .count();
    // Checkpoints start steps, and this encoder's blocks (a step at least) hold 5.4 MB.
    let per = airlock_regzip::CHECKPOINT_PLAIN_BYTES as usize;
    assert!(
        (40 << 20) / (per + 5_500_000) <= n && n < (40 << 20) / per,
        "{n}"
    );
    assert!(rebuild_shuffled(&recs, &payload, 5) == gz);
}

#[test]
fn issue_14_small_streams_have_no_checkpoint() {
    // The default spacing: a stream shorter than it has none.
    let gz = stream("go/gzip_6.gz");
    let recs = record(
        Box::new(GoSplitter::new(Producer::Go(6), Limits::UNLIMITED)),
        &gz,
    );
    assert!(!recs.iter().any(|r| matches!(r, Rec::Checkpoint { .. })));
}

#[test]
fn issue_14_a_checkpoint_with_the_wrong_history_fails() {
    let gz = stream("go/gzip_6.gz");
    let payload = payload_of(&gz);
    let recs = record(go(Producer::Go(6), 2048, 8192), &gz);
    let segs = segments(&recs);
    let (_, seg) = &segs[2];
    let Rec::Checkpoint { state, plain_at } = &seg[0] else {
        panic!("a segment starting at a checkpoint");
    };
    let cp = Checkpoint::decode(state).unwrap();
    let h = usize::try_from(cp.history()).unwrap();
    let mut rb = Rebuilder::default();
    assert!(
        rb.resume(&cp, &payload[plain_at - h + 1..*plain_at])
            .is_err()
    );
    // Passing a checkpoint in order needs the stream before it.
    assert!(Rebuilder::default().checkpoint(&cp).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
    #[test]
    fn issue_14_damaged_checkpoints_never_panic(
        which in 0usize..GO_STREAMS.len(),
        seg in 1usize..4,
        at in 0usize..32,
        byte in 1u8..=255,
    ) {
        let (path, producer) = GO_STREAMS[which];
        let gz = stream(path);
        let payload = payload_of(&gz);
        let recs = record(go(producer, 2048, 4096), &gz);
        let mut segs = segments(&recs);
        let seg = seg.min(segs.len() - 1);
        let (_, ops) = &mut segs[seg];
        let Rec::Checkpoint { state, plain_at } = &mut ops[0] else {
            return Ok(());
        };
        let i = at.min(state.len() - 1);
        state[i] ^= byte;
        // A damaged checkpoint whose history reaches before the payload is the caller's to
        // refuse (the store reads what it names and fails at the start of the payload).
        if let Ok(cp) = Checkpoint::decode(state)
            && cp.history() as usize > *plain_at
        {
            return Ok(());
        }
        // Whatever the damage does, it is an error or other bytes (the digest's to catch),
        // never a panic.
        let _ = rebuild_segment(ops, &payload);
    }
}
