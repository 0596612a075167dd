//! Parity volumes: Reed-Solomon recovery shards over stripes of a bundle's data volumes, so an
//! import rebuilds up to N missing or damaged data volumes stripe by stripe, never staging a
//! whole volume.
//!
//! Data volume `i` (from 1) is cut into shards of `stripe_bytes`: shard `j` is its bytes
//! `j*S .. (j+1)*S`, zero-padded past its end (volumes differ in length). Stripe `j` is shard
//! `j` of every data volume; parity volume `p` holds recovery shard `p - 1` of every stripe
//! (`reed-solomon-simd`, original shards in volume order). Every parity volume also carries, per
//! stripe, a check of every data and parity shard, so an import tells which stripes of a present
//! volume are damaged and repairs just those.
//!
//! ```text
//! parity  := header row{stripes} shard{stripes}
//! header  (PARITY_FIXED_LEN + 8 data_count + 16 bytes, at offset 0)
//!   0  8 magic "AIRLKPAR"
//!   8  4 format u32 = PARITY_FORMAT_VERSION
//!  12  4 number u32         this parity volume's number, 1..=parity_count
//!  16  4 parity_count u32   parity volumes of the bundle
//!  20  4 data_count u32     data volumes of the bundle
//!  24  4 stripe_bytes u32   S: even, > 0
//!  28  4 flags u32 = 0
//!  32 16 bundle_id
//!  48 32 index_check        as in every data volume's header
//!  80  8 stripes u64        ceil(longest data volume / S)
//!  88  .  data_count × u64  each data volume's length in bytes
//!   . 16 check              BLAKE3(header bytes before it)[..16]
//! row     data_count × [16] checks of the stripe's data shards (padded), then
//!         parity_count × [16] checks of its parity shards, then [16] check of the row
//! shard   S bytes: this volume's recovery shard of the stripe
//! ```
//! The file is exactly header + stripes × (row + S) bytes. It is written as `.partial`,
//! synced and renamed, like a data volume.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::{
    error::{Error, Result, io_error},
    index::BundleId,
    names::{check_bundle_name, parity_file_name},
    progress::Progress,
    wire::{Put, Take, check16, sync_parent},
};

/// Version of the parity volume layout this build writes and reads.
pub const PARITY_FORMAT_VERSION: u32 = 1;
/// Magic at the start of every parity volume.
pub const PARITY_MAGIC: &[u8; 8] = b"AIRLKPAR";
/// Bytes of the parity header before the data volume lengths.
pub const PARITY_FIXED_LEN: u64 = 88;
/// Parity volumes a bundle may have at most (`NAME.parity.NN.airlock`, two digits).
pub const MAX_PARITY_VOLUMES: u32 = 99;
/// Largest stripe an exporter picks: an import holds a few stripes of every volume in memory.
pub const MAX_STRIPE_BYTES: u32 = 1 << 20;
/// Smallest stripe an exporter picks.
pub const MIN_STRIPE_BYTES: u32 = 1024;
/// Largest stripe a reader accepts (a hostile header cannot make it allocate more per shard).
const READ_MAX_STRIPE_BYTES: u32 = 64 << 20;
/// Data volumes a parity volume may cover (the code's limit on original shards).
const MAX_DATA_VOLUMES: u32 = 32_768;
const CHECK_LEN: u64 = 16;

const _: () = assert!(PARITY_FIXED_LEN == 8 + 4 * 6 + 16 + 32 + 8);

/// What a parity volume's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParityHeader {
    /// This parity volume's number, from 1.
    pub number: u32,
    /// Parity volumes of the bundle.
    pub parity_count: u32,
    /// Data volumes of the bundle.
    pub data_count: u32,
    /// Bytes of a shard.
    pub stripe_bytes: u32,
    /// The bundle it belongs to.
    pub bundle_id: BundleId,
    /// BLAKE3 of the bundle index bytes, as in the data volumes' headers.
    pub index_check: [u8; 32],
    /// Stripes: the longest data volume's length over `stripe_bytes`, rounded up.
    pub stripes: u64,
    /// Each data volume's length, by number - 1.
    pub lengths: Vec<u64>,
}

impl ParityHeader {
    /// Bytes of the header, its check included.
    pub fn header_len(&self) -> u64 {
        PARITY_FIXED_LEN + 8 * u64::from(self.data_count) + CHECK_LEN
    }

    /// Bytes of one stripe's row of checks.
    pub fn row_len(&self) -> u64 {
        row_len(self.data_count, self.parity_count)
    }

    /// Length of the whole parity volume.
    pub fn file_len(&self) -> u64 {
        self.header_len() + self.stripes * (self.row_len() + u64::from(self.stripe_bytes))
    }

    /// Whether `other` is of the same parity set (every field but the number agrees).
    pub fn same_set(&self, other: &ParityHeader) -> bool {
        ParityHeader {
            number: self.number,
            ..other.clone()
        } == *self
    }

    fn encode(&self) -> Vec<u8> {
        let mut p = Put::default();
        p.raw(PARITY_MAGIC);
        p.u32(PARITY_FORMAT_VERSION);
        p.u32(self.number);
        p.u32(self.parity_count);
        p.u32(self.data_count);
        p.u32(self.stripe_bytes);
        p.u32(0);
        p.raw(&self.bundle_id.0);
        p.raw(&self.index_check);
        p.u64(self.stripes);
        for &l in &self.lengths {
            p.u64(l);
        }
        let check = check16(&p.0);
        p.raw(&check);
        p.0
    }

    fn row_offset(&self, stripe: u64) -> u64 {
        self.header_len() + stripe * self.row_len()
    }

    fn shard_offset(&self, stripe: u64) -> u64 {
        self.header_len() + self.stripes * self.row_len() + stripe * u64::from(self.stripe_bytes)
    }
}

fn row_len(data_count: u32, parity_count: u32) -> u64 {
    CHECK_LEN * (u64::from(data_count) + u64::from(parity_count) + 1)
}

/// The stripe size for `data_volumes` data volumes of at most `capacity` bytes and `parity`
/// parity volumes: the one making the parity volume smallest (its padding, at most a stripe,
/// against its rows of checks, one per stripe), a multiple of 64 between
/// [`MIN_STRIPE_BYTES`] and [`MAX_STRIPE_BYTES`].
pub fn stripe_bytes_for(capacity: u64, data_volumes: u32, parity: u32) -> u32 {
    let row = row_len(data_volumes, parity) as f64;
    let best = (capacity as f64 * row).sqrt() as u64 / 64 * 64;
    best.clamp(u64::from(MIN_STRIPE_BYTES), u64::from(MAX_STRIPE_BYTES)) as u32
}

/// Bytes each data volume of `capacity` keeps free so that a parity volume over at most
/// `data_volumes` data volumes, `parity` parity volumes in all, fits `capacity` too.
///
/// With `D <= capacity - reserve` the longest data volume and `S` the stripe, a parity volume
/// is `H + M (row + S)` with `M = ceil(D / S) <= D / S + 1`, so at most
/// `H + row + S + D + capacity * row / S`, which the reserve covers.
pub fn parity_reserve(capacity: u64, data_volumes: u32, parity: u32) -> u64 {
    let s = u64::from(stripe_bytes_for(capacity, data_volumes, parity));
    let row = row_len(data_volumes, parity);
    PARITY_FIXED_LEN
        + 8 * u64::from(data_volumes)
        + CHECK_LEN
        + row
        + s
        + (capacity.saturating_mul(row)).div_ceil(s)
}

/// Encodes stripes: one recovery shard per parity volume from the data shards of a stripe.
pub(crate) struct StripeEncoder {
    encoder: ReedSolomonEncoder,
    parity: usize,
}

impl StripeEncoder {
    pub(crate) fn new(data: usize, parity: usize, stripe_bytes: usize) -> Result<StripeEncoder> {
        let encoder = ReedSolomonEncoder::new(data, parity, stripe_bytes).map_err(|e| {
            Error::ParityUnsupported {
                what: format!("{data} data and {parity} parity volumes: {e}"),
            }
        })?;
        Ok(StripeEncoder { encoder, parity })
    }

    /// The recovery shards of one stripe (`data` shards all of the stripe size).
    pub(crate) fn encode(&mut self, data: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let fail = |e: reed_solomon_simd::Error| Error::ParityUnsupported {
            what: e.to_string(),
        };
        for d in data {
            self.encoder.add_original_shard(d).map_err(fail)?;
        }
        let result = self.encoder.encode().map_err(fail)?;
        let out: Vec<Vec<u8>> = result.recovery_iter().map(<[u8]>::to_vec).collect();
        debug_assert_eq!(out.len(), self.parity);
        Ok(out)
    }
}

/// A Reed-Solomon decoder kept from one stripe to the next (its work area is the size of a
/// stripe of every volume: allocated once, not per stripe).
#[derive(Default)]
pub(crate) struct StripeDecoder(Option<ReedSolomonDecoder>);

/// Fills the erased (`None`) data shards of a stripe from the intact ones and the intact
/// parity shards (`parity[p]` is recovery shard `p`); says why when it cannot.
pub(crate) fn rebuild_stripe(
    decoder: &mut StripeDecoder,
    data: &mut [Option<Vec<u8>>],
    parity: &[Option<Vec<u8>>],
    stripe_bytes: usize,
) -> std::result::Result<(), String> {
    let erased: Vec<usize> = (0..data.len()).filter(|&i| data[i].is_none()).collect();
    if erased.is_empty() {
        return Ok(());
    }
    let intact_parity = parity.iter().filter(|p| p.is_some()).count();
    if erased.len() > intact_parity {
        return Err(format!(
            "{} data shard(s) lost and only {intact_parity} intact parity shard(s)",
            erased.len()
        ));
    }
    let decoder = match &mut decoder.0 {
        Some(d) => {
            d.reset(data.len(), parity.len(), stripe_bytes)
                .map_err(|e| e.to_string())?;
            d
        }
        slot => slot.insert(
            ReedSolomonDecoder::new(data.len(), parity.len(), stripe_bytes)
                .map_err(|e| e.to_string())?,
        ),
    };
    for (i, d) in data.iter().enumerate() {
        if let Some(d) = d {
            decoder
                .add_original_shard(i, d)
                .map_err(|e| e.to_string())?;
        }
    }
    // Only as many recovery shards as there are erasures: the decoder needs no more.
    for (p, shard) in parity
        .iter()
        .enumerate()
        .filter_map(|(p, s)| Some((p, s.as_ref()?)))
        .take(erased.len())
    {
        decoder
            .add_recovery_shard(p, shard)
            .map_err(|e| e.to_string())?;
    }
    let result = decoder.decode().map_err(|e| e.to_string())?;
    for i in erased {
        let restored = result
            .restored_original(i)
            .ok_or_else(|| format!("the decoder did not restore shard {i}"))?;
        data[i] = Some(restored.to_vec());
    }
    Ok(())
}

/// Reads data shard `stripe` of a volume file that should be `len` bytes: its bytes, zero-padded
/// to `stripe_bytes` (also where the file is shorter than it should be: the check then fails).
pub(crate) fn read_data_shard(
    file: &File,
    len: u64,
    stripe: u64,
    stripe_bytes: u32,
) -> std::io::Result<Vec<u8>> {
    let s = u64::from(stripe_bytes);
    let mut buf = vec![0u8; stripe_bytes as usize];
    let start = stripe * s;
    let want = len.saturating_sub(start).min(s) as usize;
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..want], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Writes the parity volumes of the finished data volumes `data` (in number order) to `dir`:
/// each as `.partial`, synced, and renamed only once all are written. Returns their paths.
/// `parity` volumes are written; the stripe is `planned` or the best one for the volumes
/// written, whichever makes the parity volumes smaller; they must fit `capacity`.
pub(crate) fn write_parity(
    dir: &Path,
    name: &str,
    (bundle_id, index_check): (BundleId, [u8; 32]),
    data: &[PathBuf],
    (parity, planned, capacity): (u32, u32, u64),
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    check_bundle_name(name)?;
    if parity == 0 || parity > MAX_PARITY_VOLUMES || data.is_empty() {
        return Err(Error::ParityUnsupported {
            what: format!("{parity} parity volumes over {} data volumes", data.len()),
        });
    }
    let mut files = Vec::with_capacity(data.len());
    let mut lengths = Vec::with_capacity(data.len());
    for p in data {
        let f = File::open(p).map_err(io_error(p))?;
        lengths.push(f.metadata().map_err(io_error(p))?.len());
        files.push(f);
    }
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let with = |stripe_bytes: u32| ParityHeader {
        number: 1,
        parity_count: parity,
        data_count: data.len() as u32,
        stripe_bytes,
        bundle_id,
        index_check,
        stripes: longest.div_ceil(u64::from(stripe_bytes)).max(1),
        lengths: lengths.clone(),
    };
    let best = with(stripe_bytes_for(longest, data.len() as u32, parity));
    let header = match with(planned.max(2) / 2 * 2) {
        h if h.file_len() <= best.file_len() => h,
        _ => best,
    };
    let file_len = header.file_len();
    let paths: Vec<PathBuf> = (1..=parity)
        .map(|n| dir.join(parity_file_name(name, n)))
        .collect();
    if file_len > capacity {
        return Err(Error::ParityUnsupported {
            what: format!(
                "over {} data volumes a parity volume would be {file_len} bytes, over the volume \
                 size of {capacity} bytes; export again with a larger --volume-size",
                data.len()
            ),
        });
    }
    let partials: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            let mut s = p.as_os_str().to_owned();
            s.push(".partial");
            PathBuf::from(s)
        })
        .collect();
    let data: Vec<(&PathBuf, File)> = data.iter().zip(files).collect();
    progress.begin(
        "parity",
        header.stripes * u64::from(header.stripe_bytes) * data.len() as u64,
    );
    let result = write_files(&header, &data, &partials, progress);
    if let Err(e) = result {
        for p in &partials {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    for (partial, path) in partials.iter().zip(&paths) {
        std::fs::rename(partial, path).map_err(io_error(path))?;
    }
    if let Some(p) = paths.first() {
        sync_parent(p)?;
    }
    Ok(paths)
}

fn write_files(
    header: &ParityHeader,
    data: &[(&PathBuf, File)],
    partials: &[PathBuf],
    progress: &dyn Progress,
) -> Result<()> {
    let n = partials.len();
    let mut outs = Vec::with_capacity(n);
    for (i, p) in partials.iter().enumerate() {
        let f = File::create(p).map_err(io_error(p))?;
        let bytes = ParityHeader {
            number: i as u32 + 1,
            ..header.clone()
        }
        .encode();
        f.write_all_at(&bytes, 0).map_err(io_error(p))?;
        outs.push(f);
    }
    let mut shard_writers: Vec<BufWriter<&File>> = outs
        .iter()
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .collect();
    // Shards are written in order through a buffer; rows, small, where they belong.
    for (w, p) in shard_writers.iter_mut().zip(partials) {
        let at = header.shard_offset(0);
        use std::io::Seek;
        w.seek(std::io::SeekFrom::Start(at)).map_err(io_error(p))?;
    }
    let sb = header.stripe_bytes as usize;
    let mut encoder = StripeEncoder::new(data.len(), n, sb)?;
    let mut row = Vec::with_capacity(header.row_len() as usize);
    for j in 0..header.stripes {
        let mut shards = Vec::with_capacity(data.len());
        for ((path, f), &len) in data.iter().zip(&header.lengths) {
            shards.push(read_data_shard(f, len, j, header.stripe_bytes).map_err(io_error(*path))?);
        }
        let recovery = encoder.encode(&shards)?;
        row.clear();
        for s in shards.iter().chain(&recovery) {
            row.extend_from_slice(&check16(s));
        }
        let c = check16(&row);
        row.extend_from_slice(&c);
        for ((f, w), (p, shard)) in outs
            .iter()
            .zip(shard_writers.iter_mut())
            .zip(partials.iter().zip(&recovery))
        {
            f.write_all_at(&row, header.row_offset(j))
                .map_err(io_error(p))?;
            w.write_all(shard).map_err(io_error(p))?;
        }
        progress.advance(u64::from(header.stripe_bytes) * data.len() as u64);
    }
    for (w, p) in shard_writers.into_iter().zip(partials) {
        w.into_inner()
            .map_err(|e| Error::Io {
                path: p.clone(),
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(io_error(p))?;
    }
    Ok(())
}

/// The checks of one stripe, from a parity volume's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// Check of each data volume's shard, by number - 1.
    pub(crate) data: Vec<[u8; 16]>,
    /// Check of each parity volume's shard, by number - 1.
    pub(crate) parity: Vec<[u8; 16]>,
}

/// An open parity volume whose header is intact; its rows and shards are checked as read.
#[derive(Debug)]
pub struct ParityReader {
    path: PathBuf,
    file: File,
    len: u64,
    header: ParityHeader,
}

impl ParityReader {
    /// Opens a parity volume and checks its header; rows and shards are checked when read.
    pub fn open(path: &Path) -> Result<ParityReader> {
        let mut file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let corrupt = |offset: u64, what: String| Error::ParityCorrupt {
            path: path.to_owned(),
            offset,
            what,
        };
        let mut head = Vec::with_capacity(PARITY_FIXED_LEN as usize);
        (&mut file)
            .take(PARITY_FIXED_LEN)
            .read_to_end(&mut head)
            .map_err(io_error(path))?;
        let magic_len = head.len().min(8);
        if head[..magic_len] != PARITY_MAGIC[..magic_len] || head.is_empty() {
            return Err(corrupt(0, "not a parity volume (no AIRLKPAR magic)".into()));
        }
        if (head.len() as u64) < PARITY_FIXED_LEN {
            return Err(corrupt(0, format!("truncated at {len} bytes")));
        }
        let mut t = Take::new(&head[8..]);
        let fixed = (|| -> std::result::Result<_, String> {
            Ok((
                t.u32("format")?,
                t.u32("number")?,
                t.u32("parity count")?,
                t.u32("data count")?,
                t.u32("stripe bytes")?,
                t.u32("flags")?,
                BundleId(t.array("bundle id")?),
                t.array::<32>("index check")?,
                t.u64("stripes")?,
            ))
        })()
        .map_err(|w| corrupt(0, w))?;
        let (
            format,
            number,
            parity_count,
            data_count,
            stripe_bytes,
            _flags,
            bundle_id,
            ix,
            stripes,
        ) = fixed;
        if format != PARITY_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_owned(),
                kind: "parity volume",
                version: format,
                supported: PARITY_FORMAT_VERSION,
            });
        }
        if data_count == 0 || data_count > MAX_DATA_VOLUMES {
            return Err(corrupt(
                12,
                format!("header says {data_count} data volumes"),
            ));
        }
        let rest_len = 8 * u64::from(data_count) + CHECK_LEN;
        if len < PARITY_FIXED_LEN + rest_len {
            return Err(corrupt(0, format!("truncated at {len} bytes")));
        }
        let mut rest = vec![0u8; rest_len as usize];
        file.read_exact_at(&mut rest, PARITY_FIXED_LEN)
            .map_err(io_error(path))?;
        let (lengths_bytes, check) = rest.split_at(rest.len() - CHECK_LEN as usize);
        head.extend_from_slice(lengths_bytes);
        if check != check16(&head) {
            return Err(corrupt(0, "header check mismatch".into()));
        }
        let lengths: Vec<u64> = lengths_bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let why = if number == 0 || number > parity_count || parity_count > MAX_PARITY_VOLUMES {
            Some(format!(
                "header says parity volume {number} of {parity_count}"
            ))
        } else if stripe_bytes == 0 || stripe_bytes % 2 != 0 || stripe_bytes > READ_MAX_STRIPE_BYTES
        {
            Some(format!("header says stripes of {stripe_bytes} bytes"))
        } else {
            let longest = lengths.iter().copied().max().unwrap_or(0);
            (stripes != longest.div_ceil(u64::from(stripe_bytes)).max(1))
                .then(|| format!("{stripes} stripes do not cover data volumes of {longest} bytes"))
        };
        if let Some(why) = why {
            return Err(corrupt(0, why));
        }
        let header = ParityHeader {
            number,
            parity_count,
            data_count,
            stripe_bytes,
            bundle_id,
            index_check: ix,
            stripes,
            lengths,
        };
        Ok(ParityReader {
            path: path.to_owned(),
            file,
            len,
            header,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header.
    pub fn header(&self) -> &ParityHeader {
        &self.header
    }

    /// Whether the file has the length its header implies (a shorter one lost its last stripes).
    pub fn is_whole(&self) -> bool {
        self.len == self.header.file_len()
    }

    /// The checks of stripe `stripe`, refused when the row's own check fails.
    pub(crate) fn row(&self, stripe: u64) -> std::result::Result<Row, String> {
        let h = &self.header;
        let at = h.row_offset(stripe);
        let mut buf = vec![0u8; h.row_len() as usize];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|e| format!("row of stripe {stripe} at offset {at}: {e}"))?;
        let (body, check) = buf.split_at(buf.len() - CHECK_LEN as usize);
        if check != check16(body) {
            return Err(format!(
                "row of stripe {stripe} at offset {at}: check mismatch"
            ));
        }
        let mut checks = body
            .chunks_exact(CHECK_LEN as usize)
            .map(|c| c.try_into().unwrap_or([0; 16]));
        let data = checks.by_ref().take(h.data_count as usize).collect();
        let parity = checks.collect();
        Ok(Row { data, parity })
    }

    /// This volume's recovery shard of stripe `stripe`, unchecked (see [`Row`]).
    pub(crate) fn shard(&self, stripe: u64) -> std::result::Result<Vec<u8>, String> {
        let at = self.header.shard_offset(stripe);
        let mut buf = vec![0u8; self.header.stripe_bytes as usize];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|e| format!("shard of stripe {stripe} at offset {at}: {e}"))?;
        Ok(buf)
    }
}

/// Check of a data shard, as the rows hold it.
pub(crate) fn shard_check(shard: &[u8]) -> [u8; 16] {
    check16(shard)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn volume(seed: u64, len: usize) -> Vec<u8> {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        let mut out = vec![0u8; len];
        h.finalize_xof().fill(&mut out);
        out
    }

    fn shard_of(v: &[u8], j: usize, s: usize) -> Vec<u8> {
        let mut out = vec![0u8; s];
        let start = (j * s).min(v.len());
        let end = ((j + 1) * s).min(v.len());
        out[..end - start].copy_from_slice(&v[start..end]);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any erasures up to the parity count rebuild the exact shards, whatever the lengths.
        #[test]
        fn erasures_up_to_n_rebuild_exactly(
            lens in prop::collection::vec(1usize..5000, 1..9),
            parity in 1usize..4,
            half_stripe in 1usize..300,
            erase_seed in any::<u64>(),
        ) {
            let s = half_stripe * 2;
            let vols: Vec<Vec<u8>> =
                lens.iter().enumerate().map(|(i, &l)| volume(i as u64, l)).collect();
            let stripes = lens.iter().max().unwrap().div_ceil(s);
            let mut enc = StripeEncoder::new(vols.len(), parity, s).unwrap();
            // One decoder for every stripe, as an import keeps it.
            let mut dec = StripeDecoder::default();
            let erasures = (erase_seed as usize % (parity + 1)).min(vols.len() + parity);
            for j in 0..stripes {
                let data: Vec<Vec<u8>> = vols.iter().map(|v| shard_of(v, j, s)).collect();
                let rec = enc.encode(&data).unwrap();
                // Erase `erasures` shards among data and parity, chosen from the seed.
                let total = vols.len() + parity;
                let mut order: Vec<usize> = (0..total).collect();
                let mut x = erase_seed.wrapping_add(j as u64);
                for i in (1..total).rev() {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    order.swap(i, (x >> 33) as usize % (i + 1));
                }
                let gone: Vec<usize> = order[..erasures].to_vec();
                let mut d: Vec<Option<Vec<u8>>> = data.iter().enumerate()
                    .map(|(i, x)| (!gone.contains(&i)).then(|| x.clone())).collect();
                let p: Vec<Option<Vec<u8>>> = rec.iter().enumerate()
                    .map(|(i, x)| (!gone.contains(&(vols.len() + i))).then(|| x.clone())).collect();
                rebuild_stripe(&mut dec, &mut d, &p, s).unwrap();
                let got: Vec<Vec<u8>> = d.into_iter().map(Option::unwrap).collect();
                prop_assert_eq!(got, data);
            }
        }
    }

    #[test]
    fn more_erasures_than_parity_are_refused() {
        let s = 64;
        let data: Vec<Vec<u8>> = (0..4).map(|i| volume(i, s)).collect();
        let rec = StripeEncoder::new(4, 2, s).unwrap().encode(&data).unwrap();
        let mut d: Vec<Option<Vec<u8>>> = data.iter().cloned().map(Some).collect();
        d[0] = None;
        d[2] = None;
        let p = vec![None, Some(rec[1].clone())];
        let err = rebuild_stripe(&mut StripeDecoder::default(), &mut d, &p, s).unwrap_err();
        assert!(err.contains("2 data shard(s) lost"), "{err}");
    }

    /// Parity volumes fit the capacity the reserve was computed for.
    #[test]
    fn the_reserve_keeps_parity_within_capacity() {
        for capacity in [300_000u64, 737_280_000, 4_700_000_000, 1 << 20] {
            for (k, n) in [(1u32, 1u32), (8, 2), (40, 3), (200, 10)] {
                let reserve = parity_reserve(capacity, k, n);
                let d = capacity - reserve;
                let s = stripe_bytes_for(capacity, k, n);
                let h = ParityHeader {
                    number: 1,
                    parity_count: n,
                    data_count: k,
                    stripe_bytes: s,
                    bundle_id: BundleId([0; 16]),
                    index_check: [0; 32],
                    stripes: d.div_ceil(u64::from(s)),
                    lengths: vec![d; k as usize],
                };
                assert!(h.file_len() <= capacity, "{capacity} {k} {n}");
            }
        }
    }

    #[test]
    fn parity_files_round_trip_and_find_damage() {
        let dir = tempfile::tempdir().unwrap();
        let lens = [9000usize, 12_345, 700];
        let vols: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| volume(i as u64, l))
            .collect();
        let paths: Vec<PathBuf> = vols
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = dir.path().join(format!("d{i}"));
                std::fs::write(&p, v).unwrap();
                p
            })
            .collect();
        let id = (BundleId([3; 16]), [4; 32]);
        let out = write_parity(
            dir.path(),
            "app",
            id,
            &paths,
            (2, 4096, 1 << 20),
            &crate::NoProgress,
        )
        .unwrap();
        assert_eq!(out[1], dir.path().join("app.parity.02.airlock"));
        let readers: Vec<ParityReader> =
            out.iter().map(|p| ParityReader::open(p).unwrap()).collect();
        let h = readers[0].header();
        assert!(readers[0].is_whole());
        let sb = h.stripe_bytes as usize;
        assert_eq!(h.stripes, 12_345u64.div_ceil(sb as u64));
        assert_eq!(h.lengths, vec![9000, 12_345, 700]);
        assert!(h.same_set(readers[1].header()));
        // Volume 2 lost: rebuilt from the others and the parity, stripe by stripe.
        for j in 0..h.stripes {
            let row = readers[0].row(j).unwrap();
            assert_eq!(row, readers[1].row(j).unwrap());
            let mut d: Vec<Option<Vec<u8>>> = vols
                .iter()
                .map(|v| Some(shard_of(v, j as usize, sb)))
                .collect();
            for (i, x) in d.iter().enumerate() {
                assert_eq!(shard_check(x.as_ref().unwrap()), row.data[i]);
            }
            d[1] = None;
            let p: Vec<Option<Vec<u8>>> =
                readers.iter().map(|r| Some(r.shard(j).unwrap())).collect();
            for (i, x) in p.iter().enumerate() {
                assert_eq!(shard_check(x.as_ref().unwrap()), row.parity[i]);
            }
            rebuild_stripe(&mut StripeDecoder::default(), &mut d, &p, sb).unwrap();
            assert_eq!(d[1].as_ref().unwrap(), &shard_of(&vols[1], j as usize, sb));
        }
        // A flipped byte in the header: refused; in a row: that row refused.
        let mut bytes = std::fs::read(&out[0]).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&out[0], &bytes).unwrap();
        let err = ParityReader::open(&out[0]).unwrap_err().to_string();
        assert!(err.contains("header check mismatch"), "{err}");
        bytes[30] ^= 1;
        let row1 = (h.header_len() + h.row_len()) as usize;
        bytes[row1 + 3] ^= 1;
        std::fs::write(&out[0], &bytes).unwrap();
        let r = ParityReader::open(&out[0]).unwrap();
        assert!(r.row(0).is_ok());
        assert!(r.row(1).unwrap_err().contains("check mismatch"));
        std::fs::write(&out[0], b"GIF89a").unwrap();
        assert!(ParityReader::open(&out[0]).is_err());
    }
}
