//! The one walk over a manifest graph: depth first, each manifest's children before it, what
//! comes after a manifest (its referrers) after it, each manifest once, at most
//! [`MAX_WALK_DEPTH`] deep.
//!
//! The walk knows no storage: a [`ManifestGraph`] reads each node (from a store's recorded
//! edges, from parsed manifest bytes, from an upstream registry) and records what it needs.

use std::{collections::HashSet, fmt, hash::Hash};

use crate::error::Error;

/// Deepest nesting followed: an index of indexes of manifests is depth 2, a referrer is one
/// deeper than its subject. Real images stay far below; the bound stops hostile graphs.
pub const MAX_WALK_DEPTH: usize = 16;

/// What a [`Walk`] asks of the graph it walks.
pub trait ManifestGraph {
    /// What the walk visits: a digest, a descriptor, a manifest in a repository.
    type Node;
    /// What identifies a manifest, so that each is walked once; named in [`Error::TooDeep`].
    type Key: Eq + Hash + fmt::Display;
    /// The graph's error; walk errors convert into it.
    type Error: From<Error>;

    /// The key of `node`.
    fn key(&self, node: &Self::Node) -> Self::Key;

    /// Reads `node`: `Some(children)` for a manifest, whose children are walked (in order) before
    /// it, or `None` for anything not walked further (a blob, a manifest not at hand).
    fn enter(&mut self, node: &Self::Node) -> Result<Option<Vec<Self::Node>>, Self::Error>;

    /// After a manifest's children: records it, and returns what to walk after it (referrers).
    fn leave(&mut self, node: &Self::Node) -> Result<Vec<Self::Node>, Self::Error> {
        let _ = node;
        Ok(Vec::new())
    }

    /// A manifest met again, from another parent or root.
    fn revisit(&mut self, node: Self::Node) -> Result<(), Self::Error> {
        let _ = node;
        Ok(())
    }

    /// Lets the graph say which parent a failing child was reached from.
    fn in_child(&self, parent: &Self::Node, err: Self::Error) -> Self::Error {
        let _ = parent;
        err
    }
}

/// A walk, which remembers the manifests it has left across roots.
#[derive(Debug)]
pub struct Walk<K> {
    seen: HashSet<K>,
}

impl<K: Eq + Hash> Default for Walk<K> {
    fn default() -> Self {
        Walk {
            seen: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash + fmt::Display> Walk<K> {
    /// A walk that has seen nothing.
    pub fn new() -> Self {
        Walk::default()
    }

    /// Walks `graph` from `root`.
    pub fn visit<G>(&mut self, graph: &mut G, root: G::Node) -> Result<(), G::Error>
    where
        G: ManifestGraph<Key = K>,
    {
        self.visit_at(graph, root, 0)
    }

    /// Whether the manifest `key` names was walked (left) already.
    pub fn contains(&self, key: &K) -> bool {
        self.seen.contains(key)
    }

    fn visit_at<G>(&mut self, graph: &mut G, node: G::Node, depth: usize) -> Result<(), G::Error>
    where
        G: ManifestGraph<Key = K>,
    {
        let key = graph.key(&node);
        if self.seen.contains(&key) {
            return graph.revisit(node);
        }
        let Some(children) = graph.enter(&node)? else {
            return Ok(());
        };
        if depth > MAX_WALK_DEPTH {
            return Err(Error::TooDeep {
                manifest: key.to_string(),
                max: MAX_WALK_DEPTH,
            }
            .into());
        }
        for child in children {
            self.visit_at(graph, child, depth + 1)
                .map_err(|e| graph.in_child(&node, e))?;
        }
        let after = graph.leave(&node)?;
        self.seen.insert(key);
        for next in after {
            self.visit_at(graph, next, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Manifests by name with their children and referrers; anything else is a blob.
    #[derive(Default)]
    struct Toy {
        manifests: BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)>,
        entered: Vec<&'static str>,
        left: Vec<&'static str>,
        revisited: Vec<&'static str>,
    }

    impl ManifestGraph for Toy {
        type Node = &'static str;
        type Key = &'static str;
        type Error = String;

        fn key(&self, node: &&'static str) -> &'static str {
            node
        }

        fn enter(&mut self, node: &&'static str) -> Result<Option<Vec<&'static str>>, String> {
            self.entered.push(node);
            if node.starts_with("bad") {
                return Err(format!("{node} is unreadable"));
            }
            Ok(self.manifests.get(node).map(|(c, _)| c.clone()))
        }

        fn leave(&mut self, node: &&'static str) -> Result<Vec<&'static str>, String> {
            self.left.push(node);
            Ok(self
                .manifests
                .get(node)
                .map(|(_, r)| r.clone())
                .unwrap_or_default())
        }

        fn revisit(&mut self, node: &'static str) -> Result<(), String> {
            self.revisited.push(node);
            Ok(())
        }

        fn in_child(&self, parent: &&'static str, err: String) -> String {
            format!("in {parent}: {err}")
        }
    }

    impl From<Error> for String {
        fn from(e: Error) -> String {
            e.to_string()
        }
    }

    #[test]
    fn children_before_parents_referrers_after_each_once() {
        let mut g = Toy::default();
        g.manifests
            .insert("index", (vec!["amd64", "blob0", "arm64"], vec!["sig"]));
        g.manifests
            .insert("amd64", (vec!["config", "layer"], vec![]));
        g.manifests
            .insert("arm64", (vec!["config", "layer2"], vec![]));
        g.manifests
            .insert("sig", (vec!["sigblob", "index"], vec![]));
        let mut walk = Walk::new();
        walk.visit(&mut g, "index").expect("walk");
        assert_eq!(g.left, ["amd64", "arm64", "index", "sig"]);
        assert_eq!(
            g.entered,
            [
                "index", "amd64", "config", "layer", "blob0", "arm64", "config", "layer2", "sig",
                "sigblob"
            ]
        );
        assert_eq!(g.revisited, ["index"], "met again from its referrer");
        assert!(walk.contains(&"arm64") && !walk.contains(&"layer"));
        // Across roots, what was walked is only revisited.
        walk.visit(&mut g, "amd64").expect("again");
        assert_eq!(g.revisited, ["index", "amd64"]);
        assert_eq!(g.left.len(), 4);
    }

    #[test]
    fn depth_is_bounded_and_errors_name_the_path() {
        let mut g = Toy::default();
        let names: Vec<&'static str> = (0..=MAX_WALK_DEPTH + 1)
            .map(|i| &*Box::leak(format!("m{i}").into_boxed_str()))
            .collect();
        for pair in names.windows(2) {
            g.manifests.insert(pair[0], (vec![pair[1]], vec![]));
        }
        g.manifests
            .insert(names[MAX_WALK_DEPTH + 1], (vec![], vec![]));
        let err = Walk::new().visit(&mut g, names[0]).expect_err("too deep");
        assert!(
            err.ends_with(&format!(
                "manifests nest deeper than {MAX_WALK_DEPTH} at m{}",
                MAX_WALK_DEPTH + 1
            )),
            "{err}"
        );
        assert!(err.starts_with("in m0: in m1: "), "{err}");
        // One level less is fine, and blobs under the deepest manifest are too.
        let mut g = Toy::default();
        for pair in names[1..].windows(2) {
            g.manifests.insert(pair[0], (vec![pair[1]], vec![]));
        }
        Walk::new().visit(&mut g, names[1]).expect("at the limit");

        let mut g = Toy::default();
        g.manifests.insert("top", (vec!["bad"], vec![]));
        assert_eq!(
            Walk::new().visit(&mut g, "top"),
            Err("in top: bad is unreadable".to_owned())
        );
    }
}
