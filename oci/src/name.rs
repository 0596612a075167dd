//! Repository names, tags and registry hosts, parsed once at the edge.
//!
//! The grammars are the distribution spec's (section "Pulling manifests"), checked by hand:
//! - name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most
//!   [`MAX_NAME_BYTES`];
//! - tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
//!
//! Which repository an image from a registry host is kept under is one rule,
//! [`RepoName::in_namespace`], shared by containerd's `ns=` mirror requests and `airlock add`.

use std::{fmt, str::FromStr};

use crate::error::{Error, shorten};

/// Longest repository name accepted, source-host prefix included: many clients cap
/// `host[:port]/name` at 255 characters.
pub const MAX_NAME_BYTES: usize = 255;

/// Longest tag the spec allows.
pub const MAX_TAG_BYTES: usize = 128;

/// Longest text echoed back in an error.
const MAX_ECHO_BYTES: usize = 300;

/// A repository name (`library/nginx`, `docker.io/library/nginx`) that matches the spec's grammar.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repository an image of registry `host` is kept under: `<host>/<name>`, e.g.
    /// `docker.io` and `library/nginx` give `docker.io/library/nginx`. A port is written after
    /// `_` (`registry.local:5000` gives `registry.local_5000/...`): `:` is not allowed in names,
    /// and host names never contain `_`, so the mapping cannot collide and the result is itself
    /// a valid name that round-trips through a URL path.
    pub fn in_namespace(&self, host: &Namespace) -> Result<RepoName, Error> {
        let prefix = host.as_str().replace(':', "_");
        format!("{prefix}/{}", self.0).parse()
    }
}

impl FromStr for RepoName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match check_name(s) {
            Ok(()) => Ok(RepoName(s.to_owned())),
            Err(why) => Err(Error::InvalidName {
                text: shorten(s, MAX_ECHO_BYTES).to_owned(),
                why,
            }),
        }
    }
}

fn check_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.len() > MAX_NAME_BYTES {
        return Err("longer than 255 characters");
    }
    for component in s.split('/') {
        check_component(component)?;
    }
    Ok(())
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(c: &str) -> Result<(), &'static str> {
    let bytes = c.as_bytes();
    if bytes.is_empty() {
        return Err("empty path component");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        if b.is_ascii_uppercase() {
            return Err("uppercase letters are not allowed");
        }
        if !matches!(b, b'.' | b'_' | b'-') {
            return Err("only a-z, 0-9 and the separators . _ __ - are allowed");
        }
        // A run of separators: exactly ".", "_", "__", or one or more "-", between alphanumerics.
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let run = &c[start..i];
        let ok = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err("separators must be one of . _ __ or a run of -");
        }
        if start == 0 || i == bytes.len() {
            return Err("a path component must start and end with a letter or digit");
        }
    }
    Ok(())
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let why = match s.as_bytes() {
            [] => Some("empty"),
            _ if s.len() > MAX_TAG_BYTES => Some("longer than 128 characters"),
            [first, rest @ ..] => {
                if !word(*first) {
                    Some("must start with a letter, digit or _")
                } else if !rest.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
                    Some("only letters, digits, _ . and - are allowed")
                } else {
                    None
                }
            }
        };
        match why {
            None => Ok(Tag(s.to_owned())),
            Some(why) => Err(Error::InvalidTag {
                text: shorten(s, MAX_ECHO_BYTES).to_owned(),
                why,
            }),
        }
    }
}

/// A registry host, `host[:port]`, lowercased: containerd's `ns` query parameter, or the host of
/// an image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// The host as text (what goes back in the `OCI-Namespace` response header).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Namespace {
    type Err = Error;

    /// Accepts DNS host names (labels of `[a-z0-9-]`, not starting or ending with `-`) with an
    /// optional port 1-65535; refuses anything else, IP-v6 literals included.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let (host, port) = match lower.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (lower.as_str(), None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let host_ok = host.len() <= 253 && host.split('.').all(label_ok);
        let port_ok = port.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
        });
        if host_ok && port_ok {
            Ok(Namespace(lower))
        } else {
            Err(Error::InvalidHost {
                text: shorten(s, MAX_ECHO_BYTES).to_owned(),
            })
        }
    }
}

macro_rules! string_newtype {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

string_newtype!(RepoName, Tag, Namespace);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_spec_names() {
        for ok in [
            "a",
            "library/nginx",
            "docker.io/library/nginx",
            "a.b_c__d---e/f0",
            "0/1/2/3",
            "my-org/my-app",
        ] {
            let name: RepoName = ok.parse().expect(ok);
            assert_eq!(name.as_str(), ok);
            assert_eq!(name.to_string(), ok);
        }
        let longest = "a".repeat(MAX_NAME_BYTES);
        assert!(longest.parse::<RepoName>().is_ok());
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "a..b",
            "A",
            "library/Nginx",
            "a___b",
            "a._b",
            "a-_b",
            "-a",
            "a-",
            "_a",
            "a_",
            "a.",
            "a:1/b",
            "a b",
            "é",
            "a%2Fb",
        ] {
            let err = bad.parse::<RepoName>().expect_err(bad);
            assert!(matches!(err, Error::InvalidName { .. }), "{bad}");
        }
        let too_long = "a".repeat(MAX_NAME_BYTES + 1);
        assert!(too_long.parse::<RepoName>().is_err());
        let err = "x".repeat(1000).parse::<RepoName>().expect_err("long");
        assert!(err.to_string().len() < 400, "echoed text is shortened");
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b.c_d", "0"] {
            assert_eq!(ok.parse::<Tag>().expect(ok).as_str(), ok);
        }
        assert!("a".repeat(MAX_TAG_BYTES).parse::<Tag>().is_ok());
        for bad in ["", ".a", "-a", "a:b", "a/b", "a b", "é"] {
            let err = bad.parse::<Tag>().expect_err(bad);
            assert!(matches!(err, Error::InvalidTag { .. }), "{bad}");
        }
        assert!("a".repeat(MAX_TAG_BYTES + 1).parse::<Tag>().is_err());
    }

    #[test]
    fn namespaces_prefix_names() {
        let name: RepoName = "library/nginx".parse().expect("name");
        let ns: Namespace = "Docker.IO".parse().expect("ns");
        assert_eq!(ns.as_str(), "docker.io");
        assert_eq!(
            name.in_namespace(&ns).expect("prefixed").as_str(),
            "docker.io/library/nginx"
        );
        let ns: Namespace = "registry.local:5000".parse().expect("ns with port");
        assert_eq!(
            name.in_namespace(&ns).expect("prefixed").as_str(),
            "registry.local_5000/library/nginx"
        );
        for bad in [
            "",
            "a..b",
            "-a.io",
            "a.io:",
            "a.io:0",
            "a.io:65536",
            "[::1]:5000",
            "a/b",
            "a_b",
        ] {
            assert!(
                matches!(bad.parse::<Namespace>(), Err(Error::InvalidHost { .. })),
                "{bad}"
            );
        }
        // The prefix counts towards the length limit.
        let long: RepoName = "a".repeat(MAX_NAME_BYTES - 3).parse().expect("long");
        let ns: Namespace = "b.io".parse().expect("ns");
        let err = long.in_namespace(&ns).expect_err("too long");
        assert!(matches!(err, Error::InvalidName { .. }));
    }

    #[test]
    fn serde_validates() {
        let name: RepoName = serde_json::from_str("\"a/b\"").expect("valid");
        assert_eq!(serde_json::to_string(&name).expect("ser"), "\"a/b\"");
        assert!(serde_json::from_str::<RepoName>("\"A\"").is_err());
        assert!(serde_json::from_str::<Tag>("\".x\"").is_err());
    }

    /// Names built from the grammar itself.
    fn grammar_name() -> impl Strategy<Value = String> {
        let alnum = "[a-z0-9]{1,4}";
        let sep = prop_oneof![
            Just(".".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            "-{1,3}"
        ];
        let component =
            (alnum, prop::collection::vec((sep, alnum), 0..3)).prop_map(|(first, rest)| {
                let mut s = first;
                for (sep, part) in rest {
                    s.push_str(&sep);
                    s.push_str(&part);
                }
                s
            });
        prop::collection::vec(component, 1..5).prop_map(|c| c.join("/"))
    }

    proptest! {
        #[test]
        fn grammar_names_parse_and_round_trip(name in grammar_name()) {
            let parsed: RepoName = name.parse().expect("grammar name");
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = s.parse::<RepoName>();
            let _ = s.parse::<Tag>();
            let _ = s.parse::<Namespace>();
        }

        #[test]
        fn accepted_names_obey_the_grammar(s in "[a-z0-9._/-]{1,20}") {
            if let Ok(name) = s.parse::<RepoName>() {
                for c in name.as_str().split('/') {
                    prop_assert!(!c.is_empty());
                    prop_assert!(c.as_bytes()[0].is_ascii_alphanumeric());
                    prop_assert!(c.as_bytes()[c.len() - 1].is_ascii_alphanumeric());
                    prop_assert!(!c.contains("..") && !c.contains("___") && !c.contains("._"));
                }
            }
        }
    }
}
