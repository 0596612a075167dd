//! Digests as OCI spells them: `algorithm:encoded`, checked against the image spec's grammar and
//! its registered algorithms (sha256, sha512: lowercase hex of 64 and 128 digits).
//!
//! This is the parsed text only; hashing belongs to the store (`airlock_store::Digest`), which
//! applies the same rules, so the text of a valid [`Digest`] always parses there too.

use std::{fmt, str::FromStr};

use crate::error::Error;

/// A registered digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the OCI default.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name written before the colon.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Hex digits of an encoded digest.
    pub const fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// `sha256` or `sha512`; anything else is [`Error::UnsupportedDigest`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(Error::UnsupportedDigest {
                algorithm: crate::error::shorten(other, 64).to_owned(),
            }),
        }
    }
}

/// A validated digest, `sha256:<64 hex>` or `sha512:<128 hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm: Algorithm,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.name().len() + 1..]
    }

    /// The whole digest as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Parses `algorithm:encoded`. Text outside the spec's grammar is [`Error::InvalidDigest`]; a
    /// well-formed digest of another algorithm is [`Error::UnsupportedDigest`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || Error::InvalidDigest { text: s.to_owned() };
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        // The spec's grammar: algorithm-component ([+._-] algorithm-component)*, encoded
        // [a-zA-Z0-9=_-]+.
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let hex_ok = !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
        if !alg_ok || !hex_ok {
            return Err(invalid());
        }
        let algorithm: Algorithm = alg.parse()?;
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(invalid());
        }
        Ok(Digest {
            text: s.to_owned(),
            algorithm,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SHA256_EMPTY: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_registered_algorithms() {
        let d: Digest = SHA256_EMPTY.parse().expect("sha256");
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.to_string(), SHA256_EMPTY);
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let d: Digest = sha512.parse().expect("sha512");
        assert_eq!(
            (d.algorithm(), d.as_str()),
            (Algorithm::Sha512, sha512.as_str())
        );
    }

    #[test]
    fn refuses_malformed_and_unsupported() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:baddigeststring",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0 44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256+:abc",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(Error::InvalidDigest { .. })),
                "{bad}"
            );
        }
        let e = "md5:d41d8cd98f00b204e9800998ecf8427e"
            .parse::<Digest>()
            .expect_err("md5");
        assert_eq!(
            e,
            Error::UnsupportedDigest {
                algorithm: "md5".into()
            }
        );
        assert!("sha384:abc".parse::<Algorithm>().is_err());
        assert_eq!("sha512".parse::<Algorithm>(), Ok(Algorithm::Sha512));
    }

    #[test]
    fn serde_validates() {
        let d: Digest = serde_json::from_str(&format!("\"{SHA256_EMPTY}\"")).expect("valid");
        assert_eq!(
            serde_json::to_string(&d).expect("ser"),
            format!("\"{SHA256_EMPTY}\"")
        );
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,140}") {
            if let Ok(d) = s.parse::<Digest>() {
                prop_assert_eq!(d.to_string(), s);
                prop_assert_eq!(d.hex().len(), d.algorithm().hex_len());
            }
        }

        #[test]
        fn every_lowercase_hex_of_the_right_length_parses(hex in "[0-9a-f]{64}") {
            let d: Digest = format!("sha256:{hex}").parse().expect("valid");
            prop_assert_eq!(d.hex(), hex.as_str());
        }
    }
}
