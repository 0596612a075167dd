//! The id of a blob upload session, as found in `<blob-push-location>`, parsed once at the edge.
//! Names, tags and references are OCI's (`airlock_oci`); this one is the API's own.

use std::{fmt, str::FromStr};

use crate::error::RegistryError;

/// Longest upload session id accepted.
pub const MAX_UPLOAD_ID_BYTES: usize = 128;

/// The id of a blob upload session, as found in `<blob-push-location>`: 1 to 128 of
/// `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id in UUID v4 form (the spec asks for a UUID in `<blob-push-location>`).
    pub(crate) fn random() -> UploadId {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        UploadId(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ))
    }
}

impl FromStr for UploadId {
    type Err = RegistryError;

    /// Refuses malformed ids with BLOB_UPLOAD_UNKNOWN: no session can have one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_UPLOAD_ID_BYTES
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(RegistryError::upload_unknown(format!("{:?}", truncate(s))))
        }
    }
}

/// Shortens text echoed back in an error message.
fn truncate(s: &str) -> &str {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({:?})", self.0)
    }
}

impl AsRef<str> for UploadId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for UploadId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for UploadId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn upload_ids() {
        assert!("0f1e-ABC_9".parse::<UploadId>().is_ok());
        let id = UploadId::random();
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(id.as_str().parse::<UploadId>().expect("valid"), id);
        assert_ne!(UploadId::random(), id);
        for bad in ["", "a/b", "a.b", "%41"] {
            let err = bad.parse::<UploadId>().expect_err(bad);
            assert_eq!(err.code(), Some(ErrorCode::BlobUploadUnknown));
        }
    }
}
