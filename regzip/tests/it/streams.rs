//! Issues 3 and 6: what each committed gzip stream splits into. Streams by Go's compress/gzip
//! (levels 1-9, with and without flushes) and pgzip's default level go to goflate with almost no
//! reconstruction data; other pgzip levels are rebuilt or refused as Go streams not matched;
//! flate2's zlib-ng/zlib-rs streams go to preflate-rs, level 9 refused. Every split that
//! finishes rebuilds its stream exactly, whatever the slices it was fed in.

use airlock_regzip::{DETECT_BYTES, Error, Limits, choose_splitter};

use crate::common::{payload_of, split_and_rebuild, stream};

/// Splits `gz` with the splitter chosen from its start, fed in `slice`-byte pieces.
fn split(gz: &[u8], slice: usize) -> Result<crate::common::Split, Error> {
    let whole = gz.len() <= DETECT_BYTES;
    let head = &gz[..gz.len().min(DETECT_BYTES)];
    let s = split_and_rebuild(choose_splitter(head, whole, Limits::UNLIMITED), gz, slice)?;
    assert!(s.rebuilt == gz, "rebuilt to other bytes");
    assert!(s.payload == payload_of(gz), "other payload");
    Ok(s)
}

#[test]
fn issue_6_go_streams_split_by_goflate_with_little_data() {
    let mut names: Vec<String> = (1..=9).map(|l| format!("gzip_{l}.gz")).collect();
    names.extend(["gzip_-1.gz", "pgzip_-1_0.gz", "pgzip_-1_65536.gz"].map(String::from));
    names.extend([1, 2, 6].map(|l| format!("gzip_{l}_flush10000.gz")));
    for name in names {
        let gz = stream(&format!("go/{name}"));
        for slice in [4096, 1 << 20] {
            let s = split(&gz, slice).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.goflate_steps, s.steps, "{name}: goflate made every step");
            assert!(
                s.data_bytes * 50 <= gz.len() as u64,
                "{name}: {} B",
                s.data_bytes
            );
        }
    }
}

#[test]
fn issue_6_other_pgzip_levels_rebuild_or_are_named_unmatched() {
    for name in ["pgzip_1_65536.gz", "pgzip_9_65536.gz"] {
        let gz = stream(&format!("go/{name}"));
        match split(&gz, 1 << 16) {
            Ok(s) => eprintln!("{name}: rebuilt with {} B of data", s.data_bytes),
            Err(e) => assert_eq!(e, Error::GoEncoderUnmatched, "{name}"),
        }
    }
}

#[test]
fn issue_3_flate2_backend_streams_split_by_preflate_rs() {
    for backend in ["zlib-ng", "zlib-rs"] {
        for (what, ok) in [("l1", true), ("l6", true), ("multi", true), ("l9", false)] {
            let name = format!("flate2/{backend}-{what}.tar.gz");
            let gz = stream(&name);
            match split(&gz, 100_000) {
                Ok(s) => {
                    assert!(ok, "{name}: split, recorded as refused");
                    assert_eq!(s.goflate_steps, 0, "{name}");
                    // Worth it: far less than the compressed bytes it replaces.
                    assert!(s.data_bytes * 5 < gz.len() as u64, "{name}");
                }
                Err(e) => {
                    assert!(!ok, "{name}: {e}");
                    assert_eq!(e, Error::EncoderUnsupported, "{name}");
                }
            }
        }
    }
}
