//! What a blob's bytes are, recognised from the bytes themselves (never from a media type,
//! which may lie), and why a compressed layer is kept as its compressed bytes.

use serde::{Deserialize, Serialize};

/// Bytes needed to tell the encodings apart.
pub(crate) const SNIFF_BYTES: usize = 4;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The encoding of a blob as recognised from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Neither gzip nor zstd: an uncompressed tar, a manifest, a config, anything else (the
    /// chunker decides whether it parses as a tar; see [`crate::Layout`]).
    Raw,
    /// gzip (RFC 1952), one member or several.
    Gzip,
    /// A zstd frame.
    Zstd,
}

impl Encoding {
    /// Recognises the encoding from the first bytes of a blob (fewer if it is shorter).
    pub fn sniff(head: &[u8]) -> Encoding {
        if head.starts_with(&GZIP_MAGIC) {
            Encoding::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Encoding::Zstd
        } else {
            Encoding::Raw
        }
    }
}

/// Why a compressed blob is stored as its compressed bytes (deduplicated at blob level only)
/// instead of as chunks of its content plus reconstruction data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpaqueReason {
    /// zstd layers are not rebuilt (no exact-rebuild method is implemented).
    ZstdNotRebuilt,
    /// The deflate encoder is not one preflate-rs or goflate can predict (or the splitter
    /// panicked on it).
    EncoderUnsupported,
    /// A step rebuilt from the split's payload and reconstruction data differed from the
    /// original bytes.
    RebuildMismatch,
    /// The decompressed size passed `max_decompressed_size` or `max_decompressed_ratio`. A put
    /// fails with `Error::DecompressionLimit` instead; recorded only on a blob that was staged
    /// (acknowledged) before its ingest found it, and is never decompressed again.
    DecompressionLimit,
    /// One gzip member decompresses to more than preflate-rs can address.
    MemberTooLarge,
    /// The header is pgzip's (a Go encoder) but neither goflate's models of Go's encoders nor
    /// preflate-rs predict the stream closely enough (an unmodelled level or encoder version).
    GoEncoderUnmatched,
    /// A gzip member is damaged, truncated or unusual (a bad header, a huge header or block, a
    /// long run of bytes after the last member).
    GzipMalformed,
}

impl OpaqueReason {
    /// A short human description, as `airlock du` prints it.
    pub fn describe(self) -> &'static str {
        match self {
            OpaqueReason::ZstdNotRebuilt => "zstd not rebuilt",
            OpaqueReason::EncoderUnsupported => "encoder not supported",
            OpaqueReason::RebuildMismatch => "rebuild mismatch",
            OpaqueReason::DecompressionLimit => "decompression limit",
            OpaqueReason::MemberTooLarge => "gzip member too large",
            OpaqueReason::GzipMalformed => "malformed gzip member",
            OpaqueReason::GoEncoderUnmatched => "Go encoder not matched",
        }
    }
}

impl OpaqueReason {
    /// Why a blob whose split ended with `e` is kept as its compressed bytes; `None` when the
    /// store itself stopped the split (its own error is the put's).
    pub(crate) fn of_split(e: &airlock_regzip::Error) -> Option<OpaqueReason> {
        use airlock_regzip::Error as E;
        Some(match e {
            E::Stopped => return None,
            E::GoEncoderUnmatched => OpaqueReason::GoEncoderUnmatched,
            E::RebuildMismatch | E::Damaged { .. } | E::ModelUnknown { .. } | E::Thread { .. } => {
                OpaqueReason::RebuildMismatch
            }
            E::MemberTooLarge => OpaqueReason::MemberTooLarge,
            E::MemberMalformed => OpaqueReason::GzipMalformed,
            E::DecompressionLimit => OpaqueReason::DecompressionLimit,
            // A panic is a bug in a splitter, caught: the encoder is not one it handles.
            E::EncoderUnsupported | E::Panicked { .. } => OpaqueReason::EncoderUnsupported,
            _ => OpaqueReason::EncoderUnsupported,
        })
    }
}

impl std::fmt::Display for OpaqueReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// How a blob's bytes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoredAs {
    /// As chunks of the bytes themselves (uncompressed content).
    Chunks,
    /// As chunks of the decompressed content plus data that rebuilds the compressed stream.
    Rebuilt,
    /// As chunks of the compressed bytes: deduplicated at blob level only.
    Opaque(OpaqueReason),
    /// As the file it was received in, awaiting ingest (issue 14): not cut into chunks yet.
    Staged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_from_bytes() {
        assert_eq!(Encoding::sniff(&[0x1f, 0x8b, 8, 0]), Encoding::Gzip);
        assert_eq!(Encoding::sniff(&ZSTD_MAGIC), Encoding::Zstd);
        assert_eq!(Encoding::sniff(b"ustar"), Encoding::Raw);
        assert_eq!(Encoding::sniff(&[0x1f]), Encoding::Raw);
        assert_eq!(Encoding::sniff(&[]), Encoding::Raw);
        // gzip with another compression method is not something preflate could rebuild.
        assert_eq!(Encoding::sniff(&[0x1f, 0x8b, 7, 0]), Encoding::Raw);
    }
}
