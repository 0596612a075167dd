//! The manifest media types airlock stores and serves, each under its own type.

/// `application/vnd.oci.image.manifest.v1+json`.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`, also the referrers response's type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The kinds of manifest airlock stores; each is served back with its own media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestMediaType {
    /// An OCI image manifest: config and layers.
    OciManifest,
    /// An OCI image index: child manifests.
    OciIndex,
    /// A Docker schema 2 image manifest.
    DockerManifest,
    /// A Docker schema 2 manifest list.
    DockerManifestList,
}

impl ManifestMediaType {
    /// Every accepted type.
    pub const ALL: [ManifestMediaType; 4] = [
        ManifestMediaType::OciManifest,
        ManifestMediaType::OciIndex,
        ManifestMediaType::DockerManifest,
        ManifestMediaType::DockerManifestList,
    ];

    /// The media type string (what the `Content-Type` of a GET says).
    pub const fn as_str(self) -> &'static str {
        match self {
            ManifestMediaType::OciManifest => OCI_MANIFEST,
            ManifestMediaType::OciIndex => OCI_INDEX,
            ManifestMediaType::DockerManifest => DOCKER_MANIFEST,
            ManifestMediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// The type for a `Content-Type` or `mediaType` value, ignoring parameters and case.
    pub fn from_media_type(value: &str) -> Option<ManifestMediaType> {
        let essence = essence(value);
        ManifestMediaType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(essence))
    }

    /// The type that is exactly `value` (a descriptor's `mediaType`, no parameters).
    pub fn from_exact(value: &str) -> Option<ManifestMediaType> {
        ManifestMediaType::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
    }

    /// Whether the manifest lists other manifests (index, manifest list) rather than blobs.
    pub const fn is_index(self) -> bool {
        matches!(
            self,
            ManifestMediaType::OciIndex | ManifestMediaType::DockerManifestList
        )
    }
}

/// A media type without its parameters (`; charset=...`) and surrounding space.
pub(crate) fn essence(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip() {
        for t in ManifestMediaType::ALL {
            assert_eq!(ManifestMediaType::from_media_type(t.as_str()), Some(t));
            assert_eq!(ManifestMediaType::from_exact(t.as_str()), Some(t));
        }
        assert_eq!(
            ManifestMediaType::from_media_type(" Application/VND.oci.image.index.v1+json; x=y"),
            Some(ManifestMediaType::OciIndex)
        );
        assert_eq!(
            ManifestMediaType::from_exact("Application/VND.oci.image.index.v1+json"),
            None
        );
        assert_eq!(ManifestMediaType::from_media_type("text/plain"), None);
        assert!(ManifestMediaType::DockerManifestList.is_index());
        assert!(!ManifestMediaType::DockerManifest.is_index());
    }
}
