//! Platforms of index entries (`os`, `architecture`, `variant`) and `--platform os/arch[/variant]`.

use std::{fmt, str::FromStr};

use crate::error::Error;

/// A platform: what an index entry runs on, or what a user asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Platform {
    /// The operating system (`linux`).
    pub os: String,
    /// The CPU architecture (`amd64`, `arm64`).
    #[serde(rename = "architecture")]
    pub arch: String,
    /// The CPU variant (`v7`, `v8`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether an index entry's platform is this one: the same os and architecture, and the same
    /// variant when this one names one (arm64's variant v8 is its default).
    pub fn matches(&self, entry: &Platform) -> bool {
        let default_variant = |p: &Platform| match (p.arch.as_str(), &p.variant) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.clone(),
        };
        self.os == entry.os
            && self.arch == entry.arch
            && (self.variant.is_none() || default_variant(self) == default_variant(entry))
    }

    /// The platform of a descriptor's `platform` object, when it has a string `os` and
    /// `architecture`; anything else says nothing (index entries are not refused for it).
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Platform> {
        Some(Platform {
            os: value["os"].as_str()?.to_owned(),
            arch: value["architecture"].as_str()?.to_owned(),
            variant: value["variant"].as_str().map(str::to_owned),
        })
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// `os/arch` or `os/arch/variant`, no part empty.
    fn from_str(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::InvalidPlatform { text: s.to_owned() });
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: (*os).to_owned(),
                arch: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: (*os).to_owned(),
                arch: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(Error::InvalidPlatform { text: s.to_owned() }),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Platform {
    /// Needs a string `os` and `architecture`: unlike a pushed index, which is only read, a
    /// descriptor deserialized whole must carry a platform it can write back.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Platform::from_json(&value)
            .ok_or_else(|| serde::de::Error::custom("platform needs os and architecture"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p: Platform = "linux/arm64".parse().expect("platform");
        let v8: Platform = "linux/arm64/v8".parse().expect("platform");
        assert!(p.matches(&v8) && v8.matches(&p));
        let arm7: Platform = "linux/arm/v7".parse().expect("platform");
        let arm6: Platform = "linux/arm/v6".parse().expect("platform");
        assert!(!arm7.matches(&arm6));
        let arm: Platform = "linux/arm".parse().expect("platform");
        assert!(arm.matches(&arm6), "no variant asked matches any");
        for bad in ["linux", "linux//v1", "/amd64", "a/b/c/d", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        assert_eq!(v8.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn json_platforms() {
        let v = serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"});
        let p = Platform::from_json(&v).expect("platform");
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(serde_json::to_value(&p).expect("ser"), v);
        assert_eq!(Platform::from_json(&serde_json::json!({"os": 1})), None);
        assert!(serde_json::from_value::<Platform>(serde_json::json!({"os": "linux"})).is_err());
    }
}
