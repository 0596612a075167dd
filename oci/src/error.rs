//! Every way OCI text can be wrong. Each variant names the offending text or field, so a caller
//! can map it to a protocol's error code (the registry does, in its `error.rs`) or print it.

/// What is wrong with a name, reference, digest, manifest or manifest graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A repository name outside the spec's grammar.
    #[error("invalid repository name {text:?}: {why}")]
    InvalidName {
        /// The text given (shortened when very long).
        text: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A tag outside the spec's grammar.
    #[error("invalid tag {text:?}: {why}")]
    InvalidTag {
        /// The text given (shortened when very long).
        text: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A registry host that is not `host[:port]`.
    #[error("invalid registry host {text:?}: expected host[:port]")]
    InvalidHost {
        /// The text given (shortened when very long).
        text: String,
    },
    /// Text that is not a digest.
    #[error("invalid digest {text:?}")]
    InvalidDigest {
        /// The text given.
        text: String,
    },
    /// A well-formed digest whose algorithm is not a registered one (sha256, sha512).
    #[error("unsupported digest algorithm {algorithm:?}: use sha256 or sha512")]
    UnsupportedDigest {
        /// The algorithm named.
        algorithm: String,
    },
    /// An image reference (`REPO:TAG`, `REPO@DIGEST`, `HOST/PATH:TAG`) that does not parse.
    #[error("invalid reference {text:?}: {why}")]
    InvalidReference {
        /// The text given.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// A repository name that means more than one stored repository (the name itself, pushed,
    /// and docker's normalization of it, added): see [`crate::RepoQuery`].
    #[error(
        "ambiguous repository name {name:?}: the store holds both {}",
        both(stored)
    )]
    AmbiguousName {
        /// The name as asked for.
        name: String,
        /// The repositories it means, in the order the rule tries them.
        stored: Vec<crate::RepoName>,
    },
    /// A platform that is not `os/arch[/variant]`.
    #[error("invalid platform {text:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
    InvalidPlatform {
        /// The text given.
        text: String,
    },
    /// A manifest body that is not a JSON object of the expected shape.
    #[error("manifest is not a valid JSON object: {why}")]
    ManifestNotJson {
        /// The JSON parser's message.
        why: String,
    },
    /// A manifest field that is missing, of the wrong kind, or not allowed.
    #[error("{field}: {why}")]
    ManifestField {
        /// The field, as a path (`config`, `layers[2]`, `schemaVersion`).
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// A descriptor's digest that does not parse.
    #[error("{field}: {why}")]
    DescriptorDigest {
        /// The field, as a path (`layers[0].digest`).
        field: String,
        /// The digest text found there.
        text: String,
        /// Why it is refused.
        why: String,
    },
    /// A manifest media type airlock does not store (Docker schema 1, OCI artifact manifests, ...).
    #[error("{}: {:?}", unsupported_why(media_type), shorten(media_type, 128))]
    UnsupportedMediaType {
        /// The media type given.
        media_type: String,
    },
    /// A manifest whose kind neither a declared media type, its `mediaType` nor its shape tells.
    #[error(
        "cannot tell the manifest's type: no media type is declared and it has neither manifests nor config"
    )]
    UnknownManifestKind,
    /// A manifest graph nested deeper than [`crate::MAX_WALK_DEPTH`].
    #[error("manifests nest deeper than {max} at {manifest}")]
    TooDeep {
        /// The manifest met past the limit.
        manifest: String,
        /// The limit.
        max: usize,
    },
}

fn unsupported_why(media_type: &str) -> &'static str {
    if media_type.contains("distribution.manifest.v1") {
        "Docker schema 1 manifests are not supported"
    } else {
        "unsupported manifest media type"
    }
}

/// `a and b`, `a, b and c`.
fn both(names: &[crate::RepoName]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(crate::RepoName::as_str).collect();
            format!("{} and {last}", rest.join(", "))
        }
    }
}

/// The first `max` bytes of `s` (at a character boundary), for text echoed in a message.
pub(crate) fn shorten(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_text() {
        let e = Error::UnsupportedMediaType {
            media_type: "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
        };
        assert!(e.to_string().starts_with("Docker schema 1"), "{e}");
        let e = Error::UnsupportedMediaType {
            media_type: "x".repeat(500),
        };
        assert!(e.to_string().len() < 200, "{e}");
        assert_eq!(shorten("é", 1), "");
        assert_eq!(
            Error::InvalidDigest { text: "a:b".into() }.to_string(),
            "invalid digest \"a:b\""
        );
    }
}
