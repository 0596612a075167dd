//! The query string: `application/x-www-form-urlencoded` pairs as Go clients write them (`+` is a
//! space, `%XX` a byte), decoded without ever failing, by the percent-encoding crate.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The decoded `key=value` pairs of a query, in order; duplicate keys are kept.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Splits and decodes `raw` (the part after `?`, without it). Pairs without `=` have an empty
    /// value; empty pairs (`a=1&&b=2`) are skipped.
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key` (Go's `url.Values.Get`).
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key` unless it is empty: an empty parameter counts as absent.
    pub(crate) fn non_empty(&self, key: &str) -> Option<&str> {
        self.first(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a query key or value: `%XX` escapes, and `+` as a space.
pub(crate) fn percent_decode(s: &str) -> String {
    decode(&s.replace('+', " "))
}

/// Decodes a path segment: `%XX` escapes; `+` is itself there.
pub(crate) fn percent_decode_path(s: &str) -> String {
    decode(s)
}

/// A `%` not followed by two hex digits stays literal; bytes that do not form UTF-8 become U+FFFD
/// (they cannot match any valid identifier anyway).
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// What a query value the registry writes (a `Link` header's `last`) escapes: everything but
/// RFC 3986's unreserved characters and `/`, which repository names hold.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Encodes a query value so that [`percent_decode`] gives it back (see [`QUERY_VALUE`]).
pub(crate) fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn decodes_like_go() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(
            percent_decode("application%2Fvnd.example%2Btype"),
            "application/vnd.example+type"
        );
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        assert_eq!(percent_decode_path("a+b%3Ac"), "a+b:c");
        assert_eq!(percent_decode("a%2Bb+c"), "a+b c");
        assert_eq!(percent_encode("a/b:c d+é"), "a/b%3Ac%20d%2B%C3%A9");
    }

    #[test]
    fn splits_pairs() {
        let q = Query::parse(Some("tag=a&tag=b&&n=&ns=docker.io&flag&tag=c"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(q.first("n"), Some(""));
        assert_eq!(q.non_empty("n"), None);
        assert_eq!(q.first("flag"), Some(""));
        assert_eq!(q.first("ns"), Some("docker.io"));
        assert_eq!(q.first("missing"), None);
        assert!(Query::parse(None).first("x").is_none());
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(s in "\\PC{0,64}") {
            prop_assert_eq!(percent_decode(&percent_encode(&s)), s);
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,64}") {
            let _ = percent_decode(&s);
            let _ = Query::parse(Some(&s));
        }
    }
}
