use airlock_chunker::{ChunkerParams, Layout, Mode};
use proptest::prelude::*;

use crate::common::{
    append_file, assert_cuts_at_files, assert_exact, cut, cut_trickled, file_ranges,
    header_records, noise, small,
};

/// One generated tar entry.
#[derive(Debug, Clone)]
enum Spec {
    File { size: usize, fill: Fill, name: Name },
    Dir,
    Symlink { long_target: bool },
    HardLink,
}

/// How an entry's path is written.
#[derive(Debug, Clone, Copy)]
enum Name {
    /// Fits the 100-byte header field.
    Short,
    /// Needs a GNU 'L' record.
    GnuLong,
    /// Preceded by a PAX 'x' record carrying it.
    Pax,
}

#[derive(Debug, Clone, Copy)]
enum Fill {
    Noise(u64),
    Byte(u8),
    /// The same few hundred bytes over and over: many identical chunks.
    Pattern(u64),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => prop::sample::select(vec![0usize, 1, 511, 512, 513, 1023, 1024, 4096, 4097]),
        3 => 0usize..3000,
        2 => 3000usize..40_000,
        1 => 200_000usize..700_000,
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let fill = prop_oneof![
        any::<u64>().prop_map(Fill::Noise),
        any::<u8>().prop_map(Fill::Byte),
        any::<u64>().prop_map(Fill::Pattern),
    ];
    let name = prop_oneof![
        6 => Just(Name::Short),
        1 => Just(Name::GnuLong),
        1 => Just(Name::Pax),
    ];
    prop_oneof![
        8 => (size(), fill, name).prop_map(|(size, fill, name)| Spec::File { size, fill, name }),
        1 => Just(Spec::Dir),
        1 => any::<bool>().prop_map(|long_target| Spec::Symlink { long_target }),
        1 => Just(Spec::HardLink),
    ]
}

/// How the archive ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Two zero blocks, as the `tar` crate and Go write.
    Marker,
    /// Zero blocks up to a 10 KiB record, as GNU tar writes.
    Record,
    /// No end marker at all.
    None,
}

fn build(specs: &[Spec], end: End) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, spec) in specs.iter().enumerate() {
        match spec {
            Spec::File { size, fill, name } => {
                let data = match *fill {
                    Fill::Noise(seed) => noise(seed, *size),
                    Fill::Byte(x) => vec![x; *size],
                    Fill::Pattern(seed) => {
                        noise(seed, 300).into_iter().cycle().take(*size).collect()
                    }
                };
                let path = match name {
                    Name::Short | Name::Pax => format!("dir/file{i}"),
                    Name::GnuLong => format!("{}/file{i}", "long-directory".repeat(10)),
                };
                if let Name::Pax = name {
                    let long = format!("{}/pax{i}", "p".repeat(200));
                    b.append_pax_extensions([("path", long.as_bytes()), ("mtime", b"1.5")])
                        .unwrap();
                }
                append_file(&mut b, &path, &data);
            }
            Spec::Dir => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("dir{i}/"), std::io::empty())
                    .unwrap();
            }
            Spec::Symlink { long_target } => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target = if *long_target {
                    "t".repeat(150)
                } else {
                    "target".into()
                };
                b.append_link(&mut h, format!("link{i}"), target).unwrap();
            }
            Spec::HardLink => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, format!("hard{i}"), "dir/file0")
                    .unwrap();
            }
        }
    }
    match end {
        End::Marker => b.into_inner().unwrap(),
        End::Record => {
            let mut v = b.into_inner().unwrap();
            v.resize(v.len().next_multiple_of(10240), 0);
            v
        }
        End::None => b.get_ref().clone(),
    }
}

fn tar_input() -> impl Strategy<Value = (Vec<Spec>, End)> {
    let end = prop_oneof![Just(End::Marker), Just(End::Record), Just(End::None)];
    (prop::collection::vec(spec(), 1..12), end)
}

/// What can go wrong with a tar on the way in.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut off at this fraction of its length.
    Truncate(f64),
    /// One byte changed at this fraction of its length.
    Flip(f64, u8),
    /// Junk after the end.
    Append(Vec<u8>),
    /// A header-like block with this size field, then a little data.
    BogusHeader(u64, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        (0.0..1.0f64, 1..=255u8).prop_map(|(at, x)| Damage::Flip(at, x)),
        prop::collection::vec(any::<u8>(), 1..3000).prop_map(Damage::Append),
        (any::<u64>(), 0..5000usize).prop_map(|(s, n)| Damage::BogusHeader(s, n)),
    ]
}

fn apply(mut tar: Vec<u8>, damage: &Damage) -> Vec<u8> {
    let at = |f: f64, len: usize| ((len as f64 * f) as usize).min(len.saturating_sub(1));
    match damage {
        Damage::Truncate(f) => tar.truncate(at(*f, tar.len())),
        Damage::Flip(f, x) => {
            let i = at(*f, tar.len());
            tar[i] ^= x;
        }
        Damage::Append(junk) => tar.extend_from_slice(junk),
        Damage::BogusHeader(size, n) => {
            // A valid checksum over an arbitrary size field (octal, or base-256 if too big).
            let mut h = tar::Header::new_gnu();
            h.set_size(*size);
            h.set_path("bogus").unwrap();
            h.set_cksum();
            tar.truncate(tar.len().saturating_sub(1024));
            tar.extend_from_slice(h.as_bytes());
            tar.extend(noise(*size, *n));
        }
    }
    tar
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_round_trip(
        data in prop::collection::vec(any::<u8>(), 0..20_000),
        step in 1usize..5000,
    ) {
        for mode in [Mode::Auto, Mode::Plain] {
            for params in [small(), ChunkerParams::default()] {
                let (pieces, layout) = cut(&data, params, mode);
                assert_exact(&data, &pieces, params);
                prop_assert_eq!(layout, Layout::Plain);
                prop_assert_eq!(cut_trickled(&data, step, params, mode).0, pieces);
            }
        }
    }

    #[test]
    fn long_repetitive_bytes_round_trip(
        seed in any::<u64>(),
        period in 1usize..5000,
        len in 0usize..600_000,
    ) {
        let data: Vec<u8> = noise(seed, period).into_iter().cycle().take(len).collect();
        for params in [small(), ChunkerParams::default()] {
            let (pieces, _) = cut(&data, params, Mode::Auto);
            assert_exact(&data, &pieces, params);
        }
    }

    #[test]
    fn tar_cuts_only_inside_file_data((specs, end) in tar_input(), step in 1usize..3000) {
        let tar = build(&specs, end);
        let files = file_ranges(&tar);
        for params in [small(), ChunkerParams::default()] {
            let (pieces, layout) = cut(&tar, params, Mode::Auto);
            assert_exact(&tar, &pieces, params);
            assert_cuts_at_files(&pieces, &files);
            prop_assert_eq!(layout, Layout::Tar { members: header_records(&tar) });
            prop_assert_eq!(cut_trickled(&tar, step, params, Mode::Auto).0, pieces);
            // Plain mode cuts the same bytes with no regard to tar.
            let (plain, layout) = cut(&tar, params, Mode::Plain);
            assert_exact(&tar, &plain, params);
            prop_assert_eq!(layout, Layout::Plain);
        }
    }

    #[test]
    fn damaged_tar_round_trips((specs, end) in tar_input(), damage in damage(), step in 1usize..3000) {
        let data = apply(build(&specs, end), &damage);
        for params in [small(), ChunkerParams::default()] {
            let (pieces, layout) = cut(&data, params, Mode::Auto);
            assert_exact(&data, &pieces, params);
            if let Layout::TarThenPlain { plain_from, .. } = layout {
                // From plain_from on, the cut is plain CDC of the rest of the input.
                let rest = &data[plain_from as usize..];
                let tail: Vec<_> = pieces
                    .iter()
                    .zip(crate::common::spans(&pieces))
                    .filter(|(_, s)| s.offset >= plain_from)
                    .map(|(p, _)| p.clone())
                    .collect();
                prop_assert_eq!(tail, cut(rest, params, Mode::Plain).0);
            }
            prop_assert_eq!(cut_trickled(&data, step, params, Mode::Auto), (pieces, layout));
        }
    }
}
