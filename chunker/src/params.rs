use fastcdc::v2020 as fcdc;

use crate::Error;

/// Version of the cut-point algorithm: FastCDC v2020 with normalization level 1 and the crate's
/// default gear table, tar-aware cuts as described in the crate docs. Any change to where cuts
/// fall is a store format change and bumps this.
pub const CHUNKER_VERSION: u32 = 1;

/// Minimum, average and maximum chunk sizes in bytes.
///
/// These are format parameters: a store records the ones it was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkerParams {
    min_size: u32,
    avg_size: u32,
    max_size: u32,
}

impl ChunkerParams {
    /// Default minimum chunk size: 16 KiB.
    pub const DEFAULT_MIN_BYTES: u32 = 16 * 1024;
    /// Default average chunk size: 64 KiB.
    pub const DEFAULT_AVG_BYTES: u32 = 64 * 1024;
    /// Default maximum chunk size: 256 KiB.
    pub const DEFAULT_MAX_BYTES: u32 = 256 * 1024;

    /// Validates sizes against FastCDC's bounds: min in 64 B..=1 MiB, avg in 256 B..=4 MiB,
    /// max in 1 KiB..=16 MiB, all even, and min <= avg <= max.
    pub fn new(min_size: u32, avg_size: u32, max_size: u32) -> Result<ChunkerParams, Error> {
        let check = |name: &str, v: u32, lo: usize, hi: usize| -> Result<(), Error> {
            if (v as usize) < lo || (v as usize) > hi || !v.is_multiple_of(2) {
                return Err(Error::InvalidParams {
                    reason: format!("{name} size {v} must be an even number in {lo}..={hi}"),
                });
            }
            Ok(())
        };
        check("min", min_size, fcdc::MINIMUM_MIN, fcdc::MINIMUM_MAX)?;
        check("avg", avg_size, fcdc::AVERAGE_MIN, fcdc::AVERAGE_MAX)?;
        check("max", max_size, fcdc::MAXIMUM_MIN, fcdc::MAXIMUM_MAX)?;
        if !(min_size <= avg_size && avg_size <= max_size) {
            return Err(Error::InvalidParams {
                reason: format!(
                    "sizes must satisfy min <= avg <= max, got {min_size} / {avg_size} / {max_size}"
                ),
            });
        }
        Ok(ChunkerParams {
            min_size,
            avg_size,
            max_size,
        })
    }

    /// Smallest chunk the cutter produces, except at the end of a file or stream.
    pub const fn min_size(&self) -> u32 {
        self.min_size
    }

    /// Target average chunk size.
    pub const fn avg_size(&self) -> u32 {
        self.avg_size
    }

    /// Largest chunk the cutter produces.
    pub const fn max_size(&self) -> u32 {
        self.max_size
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: Self::DEFAULT_MIN_BYTES,
            avg_size: Self::DEFAULT_AVG_BYTES,
            max_size: Self::DEFAULT_MAX_BYTES,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let d = ChunkerParams::default();
        assert_eq!(
            ChunkerParams::new(d.min_size(), d.avg_size(), d.max_size()).unwrap(),
            d
        );
    }

    #[test]
    fn rejects_out_of_range_and_unordered() {
        assert!(ChunkerParams::new(8, 1024, 4096).is_err());
        assert!(ChunkerParams::new(4096, 1024, 8192).is_err());
        assert!(ChunkerParams::new(1024, 4097, 8192).is_err());
        assert!(ChunkerParams::new(1024, 4096, 32 * 1024 * 1024).is_err());
    }
}
