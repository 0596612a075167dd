//! Rebuilding data volumes from parity volumes as the import reads, stripe by stripe: nothing
//! is staged on disk, and what is held is a few stripes (each one shard per data volume).
//!
//! A frame of a present volume that fails its checks is read again through [`Rebuilder::read`]:
//! each stripe it overlaps is taken from the volume when its shard matches the parity's check,
//! and rebuilt from the same stripe of the other volumes and the parity volumes when not. A
//! volume not given at all is read the same way, every stripe rebuilt. Whatever comes out
//! goes through the same frame and chunk checks as bytes read from a disc. Shards beyond a
//! data volume's end are known zeros and never count as lost. A parity shard or row that fails
//! its check is not used, and is recorded.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs::File,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::parity::{
    ParityHeader, ParityReader, Row, StripeDecoder, read_data_shard, rebuild_stripe, shard_check,
};

/// Stripes kept rebuilt: an import reads frames in order, a frame spans a few stripes.
const CACHED_STRIPES: usize = 2;

/// What was rebuilt for one data volume, and from which volumes.
#[derive(Debug, Default, Clone)]
pub(super) struct Log {
    pub(super) stripes: BTreeSet<u64>,
    pub(super) from_data: BTreeSet<u32>,
    pub(super) from_parity: BTreeSet<u32>,
}

/// The parity volumes of one bundle, the data volumes given, and the stripes rebuilt.
pub(super) struct Rebuilder {
    header: ParityHeader,
    /// By parity number - 1.
    parity: Vec<Option<ParityReader>>,
    /// By data volume number - 1.
    data: Vec<Option<(PathBuf, File)>>,
    cache: VecDeque<(u64, Arc<Vec<Vec<u8>>>)>,
    decoder: StripeDecoder,
    /// Rebuilt stripes by data volume number.
    pub(super) log: BTreeMap<u32, Log>,
    /// Stripes whose parity shard or row failed its check, by parity volume number.
    pub(super) parity_damage: BTreeMap<u32, BTreeSet<u64>>,
}

impl Rebuilder {
    /// Keeps the parity volumes of the bundle whose index has `index_check` and `data_count`
    /// volumes; every other one is returned with the reason it is not used.
    pub(super) fn new(
        index_check: [u8; 32],
        data_count: u32,
        readers: Vec<ParityReader>,
    ) -> (Option<Rebuilder>, Vec<(PathBuf, String)>) {
        let mut me: Option<Rebuilder> = None;
        let mut refused = Vec::new();
        for r in readers {
            let h = r.header();
            let why = if h.index_check != index_check {
                Some("made for another index of the bundle than its volumes carry".to_owned())
            } else if h.data_count != data_count {
                Some(format!(
                    "covers {} data volumes, the bundle has {data_count}",
                    h.data_count
                ))
            } else {
                None
            };
            if let Some(why) = why {
                refused.push((r.path().to_owned(), why));
                continue;
            }
            match me.as_mut() {
                Some(m) => {
                    if let Err(e) = m.add_parity(r) {
                        refused.push(e);
                    }
                }
                None => me = Some(Rebuilder::with(r)),
            }
        }
        (me, refused)
    }

    fn with(first: ParityReader) -> Rebuilder {
        let header = first.header().clone();
        let mut parity: Vec<Option<ParityReader>> =
            (0..header.parity_count).map(|_| None).collect();
        parity[header.number as usize - 1] = Some(first);
        Rebuilder {
            data: (0..header.data_count).map(|_| None).collect(),
            header,
            parity,
            cache: VecDeque::new(),
            decoder: StripeDecoder::default(),
            log: BTreeMap::new(),
            parity_damage: BTreeMap::new(),
        }
    }

    /// Adds a parity volume of the same set (given later, e.g. at a prompt); refused, with
    /// its path and the reason, when it is not.
    pub(super) fn add_parity(&mut self, r: ParityReader) -> Result<(), (PathBuf, String)> {
        let h = r.header();
        if !self.header.same_set(h) {
            let why = "disagrees with the other parity volumes of the bundle".to_owned();
            return Err((r.path().to_owned(), why));
        }
        let slot = &mut self.parity[h.number as usize - 1];
        if slot.is_some() {
            let why = format!("parity volume {} was given twice", h.number);
            return Err((r.path().to_owned(), why));
        }
        *slot = Some(r);
        self.cache.clear();
        Ok(())
    }

    /// A data volume given (readable header): its stripes count as present.
    pub(super) fn add_data(&mut self, number: u32, path: &Path) {
        let Some(slot) = self.data.get_mut(number as usize - 1) else {
            return;
        };
        if slot.is_none()
            && let Ok(f) = File::open(path)
        {
            *slot = Some((path.to_owned(), f));
            self.cache.clear();
        }
    }

    /// Whether data volume `number` was given.
    pub(super) fn given(&self, number: u32) -> bool {
        self.data
            .get(number as usize - 1)
            .is_some_and(Option::is_some)
    }

    /// Numbers of the data volumes not given.
    pub(super) fn absent(&self) -> Vec<u32> {
        (1..=self.header.data_count)
            .filter(|&n| !self.given(n))
            .collect()
    }

    /// Numbers of the parity volumes given and used.
    pub(super) fn parity_numbers(&self) -> Vec<u32> {
        (1..=self.header.parity_count)
            .filter(|&n| self.parity[n as usize - 1].is_some())
            .collect()
    }

    /// The file of parity volume `number`, when given and used.
    pub(super) fn parity_path(&self, number: u32) -> Option<&Path> {
        Some(self.parity.get(number as usize - 1)?.as_ref()?.path())
    }

    /// The file of data volume `number`, when given.
    pub(super) fn data_path(&self, number: u32) -> Option<&Path> {
        Some(self.data.get(number as usize - 1)?.as_ref()?.0.as_path())
    }

    /// Bytes of a stripe.
    pub(super) fn stripe_bytes(&self) -> u32 {
        self.header.stripe_bytes
    }

    /// The file of a parity volume given, to name a rebuilt volume's place beside it.
    pub(super) fn parity_dir(&self) -> Option<&Path> {
        self.parity.iter().flatten().next()?.path().parent()
    }

    /// `len` bytes at `offset` of data volume `number`: from its file where its stripes pass
    /// their checks, rebuilt where they do not or where it was not given.
    pub(super) fn read(&mut self, number: u32, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let i = number as usize - 1;
        let vlen = *self
            .header
            .lengths
            .get(i)
            .ok_or_else(|| format!("the parity volumes cover no volume {number}"))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= vlen && len > 0)
            .ok_or_else(|| format!("{len} bytes at {offset} lie beyond the volume's {vlen}"))?;
        let s = u64::from(self.header.stripe_bytes);
        let mut out = Vec::with_capacity(len as usize);
        for j in offset / s..=(end - 1) / s {
            let lo = (offset.max(j * s) - j * s) as usize;
            let hi = (end.min((j + 1) * s) - j * s) as usize;
            if let Some(shard) = self.intact_shard(i, j) {
                out.extend_from_slice(&shard[lo..hi]);
                continue;
            }
            let stripe = self.stripe(j)?;
            out.extend_from_slice(&stripe[i][lo..hi]);
        }
        Ok(out)
    }

    /// Shard `j` of data volume `i` from its file, when given and matching the check.
    fn intact_shard(&mut self, i: usize, j: u64) -> Option<Vec<u8>> {
        if let Some((_, stripe)) = self.cache.iter().find(|(at, _)| *at == j) {
            return Some(stripe[i].clone());
        }
        let (_, file) = self.data[i].as_ref()?;
        let shard =
            read_data_shard(file, self.header.lengths[i], j, self.header.stripe_bytes).ok()?;
        let row = self.row(j).ok()?;
        (shard_check(&shard) == row.data[i]).then_some(shard)
    }

    /// The checks of stripe `j`, from the first parity volume whose row is intact.
    fn row(&mut self, j: u64) -> Result<Row, String> {
        let mut problems = Vec::new();
        for p in self.parity.iter().flatten() {
            match p.row(j) {
                Ok(row) => return Ok(row),
                Err(e) => {
                    problems.push(format!("parity volume {}: {e}", p.header().number));
                    self.parity_damage
                        .entry(p.header().number)
                        .or_default()
                        .insert(j);
                }
            }
        }
        Err(format!(
            "no parity volume given has intact checks for stripe {j} ({})",
            problems.join("; ")
        ))
    }

    /// Every data shard of stripe `j`, rebuilding those lost.
    fn stripe(&mut self, j: u64) -> Result<Arc<Vec<Vec<u8>>>, String> {
        if let Some((_, stripe)) = self.cache.iter().find(|(at, _)| *at == j) {
            return Ok(stripe.clone());
        }
        let row = self.row(j)?;
        let sb = self.header.stripe_bytes;
        let s = u64::from(sb);
        let mut data: Vec<Option<Vec<u8>>> = Vec::with_capacity(self.data.len());
        for (i, slot) in self.data.iter().enumerate() {
            let len = self.header.lengths[i];
            let shard = if len <= j * s {
                // Past the volume's end: zeros, as the parity was computed.
                Some(vec![0u8; sb as usize])
            } else {
                slot.as_ref()
                    .and_then(|(_, f)| read_data_shard(f, len, j, sb).ok())
                    .filter(|shard| shard_check(shard) == row.data[i])
            };
            data.push(shard);
        }
        let mut parity: Vec<Option<Vec<u8>>> = Vec::with_capacity(self.parity.len());
        for (p, reader) in self.parity.iter().enumerate() {
            let shard = reader.as_ref().and_then(|r| {
                let shard = r.shard(j).ok().filter(|x| shard_check(x) == row.parity[p]);
                if shard.is_none() {
                    self.parity_damage
                        .entry(p as u32 + 1)
                        .or_default()
                        .insert(j);
                }
                shard
            });
            parity.push(shard);
        }
        let lost: Vec<usize> = (0..data.len()).filter(|&i| data[i].is_none()).collect();
        if !lost.is_empty() {
            let used_parity: Vec<u32> = (0..parity.len())
                .filter(|&p| parity[p].is_some())
                .take(lost.len())
                .map(|p| p as u32 + 1)
                .collect();
            rebuild_stripe(&mut self.decoder, &mut data, &parity, sb as usize).map_err(|why| {
                let names: Vec<String> = lost.iter().map(|i| (i + 1).to_string()).collect();
                format!(
                    "stripe {j} cannot be rebuilt: volume(s) {} missing or damaged there, {why}",
                    names.join(", ")
                )
            })?;
            let from_data: BTreeSet<u32> = (0..data.len())
                .filter(|i| !lost.contains(i) && self.header.lengths[*i] > j * s)
                .map(|i| i as u32 + 1)
                .collect();
            for &i in &lost {
                let rebuilt = data[i].as_deref().unwrap_or_default();
                if shard_check(rebuilt) != row.data[i] {
                    return Err(format!(
                        "stripe {j} of volume {} rebuilt from parity fails its check",
                        i + 1
                    ));
                }
                let log = self.log.entry(i as u32 + 1).or_default();
                log.stripes.insert(j);
                log.from_data.extend(&from_data);
                log.from_parity.extend(&used_parity);
            }
        }
        let stripe: Arc<Vec<Vec<u8>>> = Arc::new(data.into_iter().flatten().collect());
        if self.cache.len() >= CACHED_STRIPES {
            self.cache.pop_front();
        }
        self.cache.push_back((j, stripe.clone()));
        Ok(stripe)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{index::BundleId, parity::write_parity};

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// Five data volumes of different lengths, one parity volume of stripes of 4 KiB.
    fn bundle(dir: &Path) -> (Vec<Vec<u8>>, Vec<PathBuf>, Vec<PathBuf>) {
        let vols: Vec<Vec<u8>> = [20_000, 19_000, 20_480, 7_000, 12_345]
            .iter()
            .enumerate()
            .map(|(i, &l)| bytes(i as u64, l))
            .collect();
        let paths: Vec<PathBuf> = (0..vols.len())
            .map(|i| dir.join(format!("app.{:03}.airlock", i + 1)))
            .collect();
        for (p, v) in paths.iter().zip(&vols) {
            std::fs::write(p, v).unwrap();
        }
        let id = (BundleId([1; 16]), [2; 32]);
        let parity = write_parity(
            dir,
            "app",
            id,
            &paths,
            (1, 4096, 1 << 20),
            &crate::NoProgress,
        )
        .unwrap();
        (vols, paths, parity)
    }

    fn rebuilder(data: &[PathBuf], parity: &[PathBuf], skip: &[usize]) -> Rebuilder {
        let readers = parity
            .iter()
            .map(|p| ParityReader::open(p).unwrap())
            .collect();
        let (r, refused) = Rebuilder::new([2; 32], data.len() as u32, readers);
        assert!(refused.is_empty());
        let mut r = r.unwrap();
        for (i, p) in data.iter().enumerate() {
            if !skip.contains(&i) {
                r.add_data(i as u32 + 1, p);
            }
        }
        r
    }

    #[test]
    fn damage_spread_over_volumes_one_per_stripe_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let (vols, paths, parity) = bundle(dir.path());
        // One bad shard in each of stripes 0, 1, 2 and 3, in four different volumes.
        for (v, at) in [(0usize, 10usize), (1, 5000), (2, 9000), (4, 12_300)] {
            let mut b = vols[v].clone();
            b[at] ^= 1;
            std::fs::write(&paths[v], b).unwrap();
        }
        let mut r = rebuilder(&paths, &parity, &[]);
        for (i, v) in vols.iter().enumerate() {
            let n = i as u32 + 1;
            assert_eq!(&r.read(n, 0, v.len() as u64).unwrap(), v, "volume {n}");
            assert_eq!(r.read(n, 100, 50).unwrap(), v[100..150].to_vec());
        }
        let stripes: Vec<(u32, Vec<u64>)> = r
            .log
            .iter()
            .map(|(n, l)| (*n, l.stripes.iter().copied().collect()))
            .collect();
        assert_eq!(
            stripes,
            vec![(1, vec![0]), (2, vec![1]), (3, vec![2]), (5, vec![3])]
        );
        assert_eq!(r.log[&1].from_parity, BTreeSet::from([1]));
        assert!(!r.log[&1].from_data.contains(&1));
        assert!(r.read(1, 19_990, 20).is_err(), "beyond the volume's end");
    }

    #[test]
    fn a_missing_volume_is_rebuilt_and_two_lost_in_a_stripe_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (vols, paths, parity) = bundle(dir.path());
        let mut r = rebuilder(&paths, &parity, &[2]);
        assert_eq!(r.absent(), vec![3]);
        assert_eq!(r.read(3, 0, 20_480).unwrap(), vols[2]);
        // Volume 4 ends in stripe 1: its zeros past the end are known, so stripe 3 of
        // volume 3 still rebuilds while volume 4 is missing too, but stripe 1 does not.
        let mut r = rebuilder(&paths, &parity, &[2, 3]);
        assert_eq!(r.read(3, 12_288, 8192).unwrap(), vols[2][12_288..].to_vec());
        let err = r.read(3, 4096, 10).unwrap_err();
        assert!(
            err.contains("stripe 1 cannot be rebuilt: volume(s) 3, 4"),
            "{err}"
        );
        // A parity shard that fails its check is named and not used.
        let mut p = std::fs::read(&parity[0]).unwrap();
        let n = p.len();
        p[n - 100] ^= 1;
        std::fs::write(&parity[0], p).unwrap();
        let mut r = rebuilder(&paths, &parity, &[2]);
        assert!(r.read(3, 20_000, 100).is_err());
        assert_eq!(r.parity_damage[&1], BTreeSet::from([4]));
    }
}
