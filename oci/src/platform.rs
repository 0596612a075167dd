//! Platforms of index entries (`os`, `architecture`, `variant`) and `--platform os/arch[/variant]`,
//! and the one rule for which entries of a multi-platform index travel when only some
//! platforms are wanted ([`choose_platforms`]), which `airlock add` and `airlock export` share.

use std::{fmt, str::FromStr};

use crate::{error::Error, manifest::ParsedManifest};

/// The annotation buildx puts on an attestation manifest entry (`attestation-manifest`).
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the entry an attestation manifest describes.
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// Media types of an image's config (OCI and Docker), whose `os` and `architecture` say the
/// platform of a single-platform image.
const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Which entries of an index travel when only some platforms are wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformChoice {
    /// Per entry of the index's `manifests`, in order: whether it travels.
    pub chosen: Vec<bool>,
    /// Per platform wanted, in order: whether an entry of this index has it.
    pub matched: Vec<bool>,
    /// The platforms the index's entries run on (not `unknown/unknown`), in order.
    pub platforms: Vec<Platform>,
}

impl PlatformChoice {
    /// Whether the index is a multi-platform one: an entry says what it runs on.
    pub fn is_multi_platform(&self) -> bool {
        !self.platforms.is_empty()
    }

    /// Whether some platform wanted is among the index's entries (always true for an index
    /// that is not a multi-platform one, whose entries all travel).
    pub fn has_any(&self) -> bool {
        !self.is_multi_platform() || self.matched.iter().any(|m| *m)
    }

    /// Why nothing of the index travels: `no manifest for platform linux/s390x (the index has
    /// linux/amd64, linux/arm64)`.
    pub fn none_message(&self, wanted: &[Platform]) -> String {
        format!(
            "no manifest for platform {} (the index has {})",
            platform_list(wanted),
            if self.platforms.is_empty() {
                "none".to_owned()
            } else {
                platform_list(&self.platforms)
            }
        )
    }
}

/// Platforms as text, comma-separated (`linux/amd64, linux/arm64`).
pub fn platform_list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which entries of `index` travel when only `wanted` platforms are (all of them when
/// `wanted` is empty). The rule:
/// - an entry whose platform is a real one travels when a platform wanted matches it
///   ([`Platform::matches`]);
/// - an attestation manifest (buildx: annotation `vnd.docker.reference.type` =
///   `attestation-manifest`, platform `unknown/unknown`) travels with the entry it describes
///   (`vnd.docker.reference.digest`);
/// - any other entry (no platform, or `unknown/unknown`: artifacts, nested indexes) is not
///   for a platform and travels; a nested index is chosen from by the same rule.
pub fn choose_platforms(index: &ParsedManifest, wanted: &[Platform]) -> PlatformChoice {
    let real = |p: &Option<Platform>| -> Option<Platform> {
        p.clone()
            .filter(|p| !(p.os == "unknown" && p.arch == "unknown"))
    };
    let platforms: Vec<Platform> = index
        .manifests
        .iter()
        .filter_map(|e| real(&e.platform))
        .collect();
    let mut matched = vec![false; wanted.len()];
    let mut chosen: Vec<bool> = index
        .manifests
        .iter()
        .map(|e| match real(&e.platform) {
            Some(p) if !wanted.is_empty() => {
                let mut any = false;
                for (i, w) in wanted.iter().enumerate() {
                    if w.matches(&p) {
                        matched[i] = true;
                        any = true;
                    }
                }
                any
            }
            _ => true,
        })
        .collect();
    if !wanted.is_empty() {
        for (i, e) in index.manifests.iter().enumerate() {
            let attests = e.annotations.get(REFERENCE_TYPE).map(String::as_str)
                == Some("attestation-manifest");
            if !attests || real(&e.platform).is_some() {
                continue;
            }
            let of = e.annotations.get(REFERENCE_DIGEST).map(String::as_str);
            chosen[i] =
                index.manifests.iter().zip(&chosen.clone()).any(|(o, c)| {
                    *c && real(&o.platform).is_some() && Some(o.digest.as_str()) == of
                });
        }
    }
    PlatformChoice {
        chosen,
        matched,
        platforms,
    }
}

/// Whether a config of this media type is an image's config, whose platform
/// [`Platform::from_config`] reads.
pub fn is_image_config(media_type: &str) -> bool {
    IMAGE_CONFIG_TYPES.contains(&media_type)
}

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

    /// The platform an image's config says (`os`, `architecture`, `variant`), if it says one.
    pub fn from_config(config: &[u8]) -> Option<Platform> {
        let v: serde_json::Value = serde_json::from_slice(config).ok()?;
        Platform::from_json(&v)
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
    fn entries_are_chosen_by_platform_and_attestations_follow_theirs() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('a'), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('b'), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('c'), "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": d('a')}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('e'), "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": d('b')}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d('f'), "size": 1}
            ]
        });
        let index =
            crate::parse_manifest(None, &serde_json::to_vec(&body).expect("json")).expect("index");
        let arm: Platform = "linux/arm64".parse().expect("platform");
        let choice = choose_platforms(&index, std::slice::from_ref(&arm));
        assert_eq!(choice.chosen, [false, true, false, true, true]);
        assert_eq!(choice.matched, [true]);
        assert!(choice.is_multi_platform() && choice.has_any());
        assert_eq!(
            platform_list(&choice.platforms),
            "linux/amd64, linux/arm64/v8"
        );
        let all = choose_platforms(&index, &[]);
        assert!(all.chosen.iter().all(|c| *c));
        let s390: Platform = "linux/s390x".parse().expect("platform");
        let none = choose_platforms(&index, std::slice::from_ref(&s390));
        assert!(!none.has_any());
        assert_eq!(
            none.none_message(&[s390]),
            "no manifest for platform linux/s390x (the index has linux/amd64, linux/arm64/v8)"
        );
        let config = br#"{"os":"linux","architecture":"amd64","rootfs":{}}"#;
        assert_eq!(
            Platform::from_config(config)
                .map(|p| p.to_string())
                .as_deref(),
            Some("linux/amd64")
        );
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
