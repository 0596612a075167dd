//! Byte ranges: the `Range` header of a blob GET (RFC 9110 section 14, end-2) and the
//! `Content-Range` of an upload chunk (end-5, end-6), which the spec writes without a unit
//! (`<start>-<end>`, inclusive).

use crate::error::{ErrorCode, RegistryError};

/// An inclusive byte range `start..=end` inside a blob or upload; never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    /// The first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The last byte (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The number of bytes, at least 1.
    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }

    /// Always false: a range holds at least one byte. (Present for clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value of a 206 response: `bytes <start>-<end>/<size>`.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

/// Reads a blob GET's `Range` header against the blob's `size`.
///
/// `Ok(None)` means "serve the whole blob with 200": a unit other than `bytes`, or several ranges
/// (RFC 9110 lets a server ignore a Range it does not serve; multipart bodies are not worth it).
/// `Ok(Some(r))` is a 206 with `r` clamped to the blob. A malformed `bytes=` range, `first > last`,
/// a start past the end, or a zero-length suffix is a 416 carrying `Content-Range: bytes */size`.
pub fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>, RegistryError> {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return Ok(None);
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = || RegistryError::range_not_satisfiable(size);
    let (first, last) = spec.trim().split_once('-').ok_or_else(unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let n = parse_u64(last).ok_or_else(unsatisfiable)?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            Ok(Some(ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }))
        }
        // bytes=a- and bytes=a-b.
        (false, _) => {
            let start = parse_u64(first).ok_or_else(unsatisfiable)?;
            let end = if last.is_empty() {
                u64::MAX
            } else {
                parse_u64(last).ok_or_else(unsatisfiable)?
            };
            if end < start || start >= size {
                return Err(unsatisfiable());
            }
            Ok(Some(ByteRange {
                start,
                end: end.min(size - 1),
            }))
        }
        (true, true) => Err(unsatisfiable()),
    }
}

/// Digits only, saturating at `u64::MAX` (a huge last-pos is valid and just means "to the end").
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Reads an upload chunk's `Content-Range` (`<start>-<end>`, also tolerated as `bytes <start>-<end>/<total>`
/// or `bytes=<start>-<end>`) and checks it against the session: it must start exactly at `offset`, the
/// bytes received so far (the spec's "chunks MUST be uploaded in order"), else a 416 with
/// `Range: 0-<offset-1>`. When the request's `Content-Length` is known it must equal the range's
/// length, else SIZE_INVALID.
pub fn parse_upload_range(
    value: &str,
    offset: u64,
    content_length: Option<u64>,
) -> Result<ByteRange, RegistryError> {
    let malformed = || {
        RegistryError::upload_range_invalid(
            offset,
            format!("malformed Content-Range {:?}", short(value)),
        )
    };
    let mut spec = value.trim();
    if let Some(rest) = strip_prefix_ignore_case(spec, "bytes") {
        spec = rest.trim_start_matches([' ', '=']);
    }
    let spec = spec
        .split_once('/')
        .map_or(spec, |(range, _total)| range)
        .trim();
    let (first, last) = spec.split_once('-').ok_or_else(malformed)?;
    let start = parse_u64(first).ok_or_else(malformed)?;
    let end = parse_u64(last).ok_or_else(malformed)?;
    if end < start {
        return Err(malformed());
    }
    if start != offset {
        return Err(RegistryError::upload_range_invalid(
            offset,
            format!("chunk starts at byte {start}, the upload has {offset} bytes"),
        ));
    }
    let range = ByteRange { start, end };
    if let Some(len) = content_length.filter(|&len| len != range.len()) {
        return Err(RegistryError::new(
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range {start}-{end} is {} bytes but Content-Length is {len}",
                range.len()
            ),
        ));
    }
    Ok(range)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn short(s: &str) -> &str {
    s.get(..64).unwrap_or(s)
}

/// The `Range` header of an upload's 202/204 responses (end-5, end-13) for `offset` bytes received:
/// `0-<offset-1>`, written `0-0` for an empty upload as the Docker registry does.
pub fn upload_range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use proptest::prelude::*;

    use super::*;

    fn range(value: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(value, size)
            .expect("satisfiable")
            .map(|r| (r.start(), r.end()))
    }

    fn unsatisfiable(value: &str, size: u64) {
        let err = parse_range(value, size).expect_err(value);
        assert_eq!(err.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{value}");
        assert_eq!(
            err.headers()[header::CONTENT_RANGE],
            format!("bytes */{size}").as_str()
        );
    }

    #[test]
    fn conformance_ranges() {
        // The distribution-spec conformance suite's cases over a 2048-byte blob.
        assert_eq!(range("bytes=500-1499", 2048), Some((500, 1499)));
        assert_eq!(range("bytes=500-", 2048), Some((500, 2047)));
        assert_eq!(range("bytes=-500", 2048), Some((1548, 2047)));
        assert_eq!(range("bytes=2000-5000", 2048), Some((2000, 2047)));
        unsatisfiable("bytes=500-0", 2048);
        unsatisfiable("bytes=5000-10000", 2048);
    }

    #[test]
    fn edge_ranges() {
        assert_eq!(range("bytes=0-0", 1), Some((0, 0)));
        assert_eq!(range("bytes=-5000", 2048), Some((0, 2047)));
        assert_eq!(range("BYTES = 1-2", 10), Some((1, 2)));
        assert_eq!(range("bytes=0-99999999999999999999999", 10), Some((0, 9)));
        let r = parse_range("bytes=2-5", 10).expect("ok").expect("range");
        assert_eq!(r.len(), 4);
        assert_eq!(r.content_range(10), "bytes 2-5/10");
        // Ignored: serve everything.
        assert_eq!(range("items=0-1", 10), None);
        assert_eq!(range("bytes=0-1,4-5", 10), None);
        assert_eq!(range("", 10), None);
        unsatisfiable("bytes=-0", 10);
        unsatisfiable("bytes=0-0", 0);
        unsatisfiable("bytes=-1", 0);
        unsatisfiable("bytes=10-", 10);
        unsatisfiable("bytes=-", 10);
        unsatisfiable("bytes=a-b", 10);
        unsatisfiable("bytes=1", 10);
        unsatisfiable("bytes=+1-2", 10);
    }

    #[test]
    fn upload_ranges() {
        let r = parse_upload_range("0-99", 0, Some(100)).expect("first chunk");
        assert_eq!((r.start(), r.end(), r.len()), (0, 99, 100));
        let r = parse_upload_range("100-149", 100, None).expect("next chunk");
        assert_eq!(r.len(), 50);
        assert!(parse_upload_range("bytes 100-149/*", 100, None).is_ok());
        assert!(parse_upload_range("bytes=100-149", 100, None).is_ok());

        let err = parse_upload_range("50-99", 100, None).expect_err("out of order");
        assert_eq!(err.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadInvalid));
        assert_eq!(err.headers()[header::RANGE], "0-99");
        for bad in ["", "-", "100-", "-149", "100-99", "a-b", "100 149"] {
            let err = parse_upload_range(bad, 100, None).expect_err(bad);
            assert_eq!(err.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        }
        let err = parse_upload_range("0-9", 0, Some(11)).expect_err("length mismatch");
        assert_eq!(err.code(), Some(ErrorCode::SizeInvalid));
    }

    #[test]
    fn upload_range_headers() {
        assert_eq!(upload_range_header(0), "0-0");
        assert_eq!(upload_range_header(1), "0-0");
        assert_eq!(upload_range_header(100), "0-99");
    }

    proptest! {
        #[test]
        fn range_never_panics_and_stays_inside(value in "\\PC{0,40}", size in 0u64..5000) {
            if let Ok(Some(r)) = parse_range(&value, size) {
                prop_assert!(r.start() <= r.end());
                prop_assert!(r.end() < size);
            }
        }

        #[test]
        fn structured_ranges_stay_inside(a in 0u64..3000, b in 0u64..3000, size in 0u64..3000) {
            for value in [format!("bytes={a}-{b}"), format!("bytes={a}-"), format!("bytes=-{b}")] {
                if let Ok(Some(r)) = parse_range(&value, size) {
                    prop_assert!(r.start() <= r.end() && r.end() < size);
                }
            }
        }

        #[test]
        fn upload_range_never_panics(value in "\\PC{0,40}", offset in any::<u64>(), len in proptest::option::of(any::<u64>())) {
            if let Ok(r) = parse_upload_range(&value, offset, len) {
                prop_assert_eq!(r.start(), offset);
            }
        }
    }
}
