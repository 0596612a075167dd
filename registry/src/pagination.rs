//! `n`/`last` pagination of the tags list (end-8a, end-8b) and the catalog: lexical ("ASCIIbetical",
//! Go's `sort.Strings`) order, the page after `last`, and the `Link: <...>; rel="next"` header
//! (RFC 5988) when more remain.

use crate::{
    error::{ErrorCode, RegistryError},
    query::percent_encode,
};

/// Most entries one response holds; a larger `n` is served in pages of this size, each with a
/// `Link` to the next (the spec allows fewer than `n` results when a `Link` is given).
pub const MAX_PAGE_ENTRIES: usize = 10_000;

/// What a client asked for: at most `n` entries, starting after `last`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The `n` query parameter; `None` asks for everything.
    pub n: Option<usize>,
    /// The `last` query parameter: entries up to and including it are skipped. Kept as text, a
    /// cursor compared by byte order, not validated as a tag or name.
    pub last: Option<String>,
}

impl Page {
    /// Reads the `n` and `last` query values. An empty value counts as absent; an `n` that is not
    /// a non-negative integer is a 400.
    pub fn from_query(n: Option<&str>, last: Option<&str>) -> Result<Page, RegistryError> {
        let n = match n.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: anything too big for usize is simply "more than we will return".
                Some(s.parse::<usize>().unwrap_or(usize::MAX))
            }
            Some(s) => {
                return Err(RegistryError::new(
                    ErrorCode::Unsupported,
                    format!(
                        "invalid n {:?}: expected a non-negative integer",
                        s.get(..32).unwrap_or(s)
                    ),
                )
                .with_status(axum::http::StatusCode::BAD_REQUEST));
            }
        };
        Ok(Page {
            n,
            last: last.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }
}

/// One page of entries, and whether another follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paginated<T> {
    /// The entries of this page, sorted.
    pub items: Vec<T>,
    /// The page size a `Link` asks for next (the requested `n`, capped at [`MAX_PAGE_ENTRIES`]).
    limit: usize,
    /// Whether entries remain after `items`.
    more: bool,
}

impl<T: AsRef<str>> Paginated<T> {
    /// The `Link` header value for the next page of `path` (`/v2/<name>/tags/list` or
    /// `/v2/_catalog`), or `None` on the last page:
    /// `</v2/<name>/tags/list?n=<n>&last=<last>>; rel="next"`.
    pub fn link(&self, path: &str) -> Option<String> {
        if !self.more {
            return None;
        }
        let last = self.items.last()?;
        Some(format!(
            "<{path}?n={}&last={}>; rel=\"next\"",
            self.limit,
            percent_encode(last.as_ref())
        ))
    }
}

/// Sorts `items` by byte order, drops duplicates, and cuts the page `page` asks for. `n = 0` gives
/// an empty page and no `Link`, as the spec requires.
pub fn paginate<T: AsRef<str>>(mut items: Vec<T>, page: &Page) -> Paginated<T> {
    items.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    items.dedup_by(|a, b| a.as_ref() == b.as_ref());
    let skip = match &page.last {
        Some(last) => items.partition_point(|x| x.as_ref() <= last.as_str()),
        None => 0,
    };
    let limit = page.n.map_or(usize::MAX, |n| n.min(MAX_PAGE_ENTRIES));
    let available = items.len() - skip;
    let take = available.min(limit);
    let more = limit > 0 && available > take;
    items.truncate(skip + take);
    items.drain(..skip);
    Paginated { items, limit, more }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn page(n: Option<usize>, last: Option<&str>) -> Page {
        Page {
            n,
            last: last.map(str::to_owned),
        }
    }

    fn tags() -> Vec<String> {
        ["v2", "latest", "v1", "V1", "a", "v1"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn sorts_asciibetically_and_dedups() {
        let p = paginate(tags(), &Page::default());
        assert_eq!(p.items, ["V1", "a", "latest", "v1", "v2"]);
        assert_eq!(p.link("/v2/a/tags/list"), None);
    }

    #[test]
    fn pages_with_links() {
        let p = paginate(tags(), &page(Some(2), None));
        assert_eq!(p.items, ["V1", "a"]);
        assert_eq!(
            p.link("/v2/my/app/tags/list").as_deref(),
            Some("</v2/my/app/tags/list?n=2&last=a>; rel=\"next\"")
        );
        let p = paginate(tags(), &page(Some(2), Some("a")));
        assert_eq!(p.items, ["latest", "v1"]);
        assert!(p.link("/x").is_some());
        let p = paginate(tags(), &page(Some(2), Some("v1")));
        assert_eq!(p.items, ["v2"]);
        assert_eq!(p.link("/x"), None);
        // `last` need not be present in the list.
        let p = paginate(tags(), &page(None, Some("b")));
        assert_eq!(p.items, ["latest", "v1", "v2"]);
        // Exactly n left: no link.
        let p = paginate(tags(), &page(Some(3), Some("a")));
        assert_eq!(p.items, ["latest", "v1", "v2"]);
        assert_eq!(p.link("/x"), None);
    }

    #[test]
    fn zero_is_empty_without_link() {
        let p = paginate(tags(), &page(Some(0), None));
        assert!(p.items.is_empty());
        assert_eq!(p.link("/x"), None);
    }

    #[test]
    fn huge_n_is_capped_with_a_link() {
        let items: Vec<String> = (0..MAX_PAGE_ENTRIES + 5)
            .map(|i| format!("{i:08}"))
            .collect();
        let p = paginate(items, &page(Some(usize::MAX), None));
        assert_eq!(p.items.len(), MAX_PAGE_ENTRIES);
        let link = p.link("/v2/_catalog").expect("more remain");
        assert!(link.starts_with(&format!("</v2/_catalog?n={MAX_PAGE_ENTRIES}&last=")));
    }

    #[test]
    fn link_encodes_last() {
        let p = paginate(
            vec!["a b".to_owned(), "c&d".to_owned()],
            &page(Some(1), None),
        );
        assert_eq!(
            p.link("/v2/_catalog").as_deref(),
            Some("</v2/_catalog?n=1&last=a%20b>; rel=\"next\"")
        );
        let p = paginate(
            vec!["org/app".to_owned(), "z".to_owned()],
            &page(Some(1), None),
        );
        assert_eq!(
            p.link("/v2/_catalog").as_deref(),
            Some("</v2/_catalog?n=1&last=org/app>; rel=\"next\"")
        );
    }

    #[test]
    fn query_values() {
        assert_eq!(
            Page::from_query(None, None).expect("empty"),
            Page::default()
        );
        assert_eq!(
            Page::from_query(Some(""), Some("")).expect("empty"),
            Page::default()
        );
        assert_eq!(
            Page::from_query(Some("10"), Some("v1")).expect("ok"),
            page(Some(10), Some("v1"))
        );
        assert_eq!(
            Page::from_query(Some("99999999999999999999999"), None)
                .expect("big")
                .n,
            Some(usize::MAX)
        );
        for bad in ["-1", "a", "1.5", " 1"] {
            let err = Page::from_query(Some(bad), None).expect_err(bad);
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    proptest! {
        #[test]
        fn pages_concatenate_to_the_whole(items in prop::collection::vec("[a-c]{0,3}", 0..30), n in 1usize..6) {
            let whole = paginate(items.clone(), &Page::default()).items;
            let mut collected: Vec<String> = Vec::new();
            let mut last: Option<String> = None;
            loop {
                let p = paginate(items.clone(), &Page { n: Some(n), last: last.clone() });
                prop_assert!(p.items.len() <= n);
                let more = p.link("/x").is_some();
                collected.extend(p.items.iter().cloned());
                if !more {
                    break;
                }
                last = p.items.last().cloned();
            }
            prop_assert_eq!(collected, whole);
        }

        #[test]
        fn from_query_never_panics(n in proptest::option::of("\\PC{0,24}"), last in proptest::option::of("\\PC{0,24}")) {
            let _ = Page::from_query(n.as_deref(), last.as_deref());
        }
    }
}
