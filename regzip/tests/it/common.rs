//! The committed gzip streams the tests split (they live with the store's tests, which put
//! them as layers), and a split-then-rebuild helper.

use std::{io::Read, path::PathBuf};

use airlock_regzip::{Checkpoint, Error, Event, Rebuilder, Splitter};

/// A committed stream, by its path under `store/tests/fixtures/` (`go/gzip_6.gz`).
pub fn stream(path: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures");
    let path = dir.join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The payload a gzip decoder gives for `gz` (every member).
pub fn payload_of(gz: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// What a split emitted, rebuilt.
#[derive(Debug, Default)]
pub struct Split {
    pub payload: Vec<u8>,
    pub rebuilt: Vec<u8>,
    /// Bytes of reconstruction data.
    pub data_bytes: u64,
    /// Steps whose data is goflate's.
    pub goflate_steps: usize,
    pub steps: usize,
    pub checkpoints: usize,
}

/// Feeds `gz` to `splitter` in `slice`-byte pieces, rebuilding every step as it comes.
pub fn split_and_rebuild(
    mut splitter: Box<dyn Splitter>,
    gz: &[u8],
    slice: usize,
) -> Result<Split, Error> {
    let mut s = Split::default();
    let mut rebuilder = Rebuilder::default();
    let mut pending = Vec::new();
    let mut sink = |e: Event<'_>| {
        match e {
            Event::Raw(b) => {
                rebuilder.reset();
                s.rebuilt.extend_from_slice(b);
            }
            Event::Checkpoint(c) => {
                s.checkpoints += 1;
                s.data_bytes += c.len() as u64;
                let cp = Checkpoint::decode(&c).unwrap();
                rebuilder.checkpoint(&cp).unwrap();
            }
            Event::Plain(p) => {
                s.payload.extend_from_slice(&p);
                pending.extend_from_slice(&p);
            }
            Event::Step { plain, out, data } => {
                assert_eq!(plain as usize, pending.len());
                s.steps += 1;
                s.goflate_steps += usize::from(airlock_regzip::is_goflate(&data));
                s.data_bytes += data.len() as u64;
                let bytes = rebuilder.rebuild_step(&mut pending, data).unwrap();
                pending.clear();
                assert_eq!(bytes.len(), out as usize);
                s.rebuilt.extend_from_slice(&bytes);
            }
        }
        true
    };
    for piece in gz.chunks(slice) {
        splitter.feed(piece, &mut sink)?;
    }
    splitter.finish(&mut sink)?;
    Ok(s)
}
