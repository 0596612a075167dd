//! Which stored repository a name means: the one naming rule of airlock, shared by the registry
//! (every request without containerd's `ns`), the CLI's references (`export`, `diff`,
//! `add --as`) and `airlock ls`.
//!
//! Repositories keep the names they were created under: `airlock add` stores an image under
//! docker's fully qualified name (`docker.io/acme/gateway`), which containerd's mirror requests
//! (`?ns=docker.io`, see [`RepoName::in_namespace`]) name exactly; a push stores the path pushed
//! to (`cli/app`). A name `P` asked for without a registry means:
//! 1. the repository `P`, if the store holds it;
//! 2. else docker's normalization of `P` (`nginx` is `docker.io/library/nginx`, `acme/gateway`
//!    is `docker.io/acme/gateway`, `registry.local:5000/team/app` is
//!    `registry.local_5000/team/app`), if the store holds it;
//! 3. and when the store holds both, neither: [`Error::AmbiguousName`] names the two, because
//!    picking one would serve a different image than the other name's owner put there.
//!
//! A write (a push, `add --as`) goes where a read of the same name looks, else to `P` itself
//! (or its normalization when `P` is no repository name, as with a port): a push never makes a
//! name ambiguous, and a pull of what was pushed finds it. Whether a repository is stored is a
//! question the caller answers, so this module knows no store.

use std::str::FromStr;

use crate::{error::Error, name::RepoName, reference::docker_name};

/// A repository as a user or client names it (`nginx`, `acme/gateway`,
/// `registry.local:5000/team/app`), with the stored repositories it may mean, in the order the
/// rule tries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoQuery {
    text: String,
    /// The name itself, or its normalization when it is no valid name.
    first: RepoName,
    /// Docker's normalization of a valid name, when it differs.
    normalized: Option<RepoName>,
}

/// What a lookup found.
enum Found {
    Nothing,
    One(RepoName),
    Two(RepoName, RepoName),
}

impl RepoQuery {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The repositories the name may mean: itself, then docker's normalization of it (each when
    /// it is a valid name, the second when it differs).
    pub fn candidates(&self) -> impl Iterator<Item = &RepoName> {
        std::iter::once(&self.first).chain(&self.normalized)
    }

    /// The stored repository the name means, `None` when the store holds none of the
    /// candidates; [`Error::AmbiguousName`] when it holds both.
    pub fn resolve<E: From<Error>>(
        &self,
        is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
    ) -> Result<Option<RepoName>, E> {
        match self.lookup(is_stored)? {
            Found::Nothing => Ok(None),
            Found::One(name) => Ok(Some(name)),
            Found::Two(a, b) => Err(Error::AmbiguousName {
                name: self.text.clone(),
                stored: vec![a, b],
            }
            .into()),
        }
    }

    /// Where a write under this name goes: the repository [`RepoQuery::resolve`] finds, else
    /// the name itself (its normalization when it is not a valid repository name).
    pub fn place<E: From<Error>>(
        &self,
        is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
    ) -> Result<RepoName, E> {
        match self.resolve(is_stored)? {
            Some(name) => Ok(name),
            None => Ok(self.first.clone()),
        }
    }

    fn lookup<E>(
        &self,
        mut is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
    ) -> Result<Found, E> {
        let mut found = Vec::with_capacity(2);
        for candidate in self.candidates() {
            if is_stored(candidate)? {
                found.push(candidate.clone());
            }
        }
        let mut found = found.into_iter();
        Ok(match (found.next(), found.next()) {
            (None, _) => Found::Nothing,
            (Some(one), None) => Found::One(one),
            (Some(a), Some(b)) => Found::Two(a, b),
        })
    }
}

impl FromStr for RepoQuery {
    type Err = Error;

    /// Accepts a valid repository name or one docker normalizes into a valid name; refuses text
    /// that is neither, with the repository grammar's reason (docker's when the text names a
    /// registry port, which no repository name can hold).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let literal = text.parse::<RepoName>();
        let normalized = docker_name(text).map(|(_, _, repository)| repository);
        let (first, normalized) = match (literal, normalized) {
            (Ok(literal), normalized) => {
                let normalized = normalized.ok().filter(|n| *n != literal);
                (literal, normalized)
            }
            (Err(_), Ok(normalized)) => (normalized, None),
            (Err(literal), Err(_)) if !text.contains(':') => return Err(literal),
            (Err(_), Err(why)) => {
                return Err(Error::InvalidReference {
                    text: text.to_owned(),
                    why,
                });
            }
        };
        Ok(RepoQuery {
            text: text.to_owned(),
            first,
            normalized,
        })
    }
}

impl From<RepoName> for RepoQuery {
    /// A name already checked, as a request path holds it.
    fn from(name: RepoName) -> Self {
        let normalized = docker_name(name.as_str())
            .ok()
            .map(|(_, _, repository)| repository)
            .filter(|n| *n != name);
        RepoQuery {
            text: name.to_string(),
            first: name,
            normalized,
        }
    }
}

/// The shortest name a pull without `ns` reads `stored` by: docker's short form (`nginx` for
/// `docker.io/library/nginx`, `acme/gateway` for `docker.io/acme/gateway`) when it means
/// `stored` alone, else `library/nginx`, else `stored` itself; `None` when even that is
/// ambiguous (a pushed `acme/gateway` beside an added `docker.io/acme/gateway`).
pub fn direct_name<E: From<Error>>(
    stored: &RepoName,
    mut is_stored: impl FnMut(&RepoName) -> Result<bool, E>,
) -> Result<Option<RepoName>, E> {
    let mut shorter = Vec::new();
    if let Some(path) = stored.as_str().strip_prefix("docker.io/") {
        if let Some(one) = path.strip_prefix("library/").filter(|p| !p.contains('/')) {
            shorter.push(one);
        }
        shorter.push(path);
    }
    for text in shorter.into_iter().chain([stored.as_str()]) {
        // Suffixes of a valid name at a `/` are valid names.
        let Ok(name) = text.parse::<RepoName>() else {
            continue;
        };
        if let Found::One(found) = RepoQuery::from(name.clone()).lookup(&mut is_stored)?
            && found == *stored
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// A store holding `names`.
    fn store<'a>(names: &'a [&'a str]) -> impl Fn(&RepoName) -> Result<bool, Error> + 'a {
        move |n| Ok(names.contains(&n.as_str()))
    }

    fn resolve(text: &str, names: &[&str]) -> Result<Option<String>, Error> {
        let query: RepoQuery = text.parse()?;
        Ok(query.resolve(store(names))?.map(|n| n.to_string()))
    }

    fn place(text: &str, names: &[&str]) -> String {
        let query: RepoQuery = text.parse().expect(text);
        query.place(store(names)).expect(text).to_string()
    }

    fn direct(stored: &str, names: &[&str]) -> Option<String> {
        let stored: RepoName = stored.parse().expect(stored);
        direct_name(&stored, store(names))
            .expect("lookup")
            .map(|n| n.to_string())
    }

    #[test]
    fn candidates_are_the_name_then_dockers_form() {
        let names = |text: &str| -> Vec<String> {
            let q: RepoQuery = text.parse().expect(text);
            q.candidates().map(ToString::to_string).collect()
        };
        assert_eq!(names("nginx"), ["nginx", "docker.io/library/nginx"]);
        assert_eq!(
            names("acme/gateway"),
            ["acme/gateway", "docker.io/acme/gateway"]
        );
        assert_eq!(names("docker.io/acme/gateway"), ["docker.io/acme/gateway"]);
        assert_eq!(
            names("index.docker.io/library/nginx"),
            ["index.docker.io/library/nginx", "docker.io/library/nginx"]
        );
        assert_eq!(
            names("registry.example.com/x/y"),
            ["registry.example.com/x/y"]
        );
        assert_eq!(
            names("registry.local:5000/team/app"),
            ["registry.local_5000/team/app"]
        );
        // The stored form of a host with a port is no docker name: only itself.
        assert_eq!(
            names("registry.local_5000/team/app"),
            ["registry.local_5000/team/app"]
        );
        assert_eq!(names("localhost/app"), ["localhost/app"]);
        for bad in ["", "Nginx", "a//b", "quay.io/", "registry.local:x/a", "a:1"] {
            assert!(bad.parse::<RepoQuery>().is_err(), "{bad}");
        }
        let err = "Acme/gateway".parse::<RepoQuery>().expect_err("uppercase");
        assert!(
            err.to_string().contains("\"Acme/gateway\""),
            "the name as written: {err}"
        );
    }

    #[test]
    fn issue_15_a_short_name_finds_the_added_image() {
        let added = ["docker.io/acme/gateway", "docker.io/library/nginx"];
        assert_eq!(
            resolve("acme/gateway", &added),
            Ok(Some("docker.io/acme/gateway".into()))
        );
        assert_eq!(
            resolve("docker.io/acme/gateway", &added),
            Ok(Some("docker.io/acme/gateway".into()))
        );
        for nginx in [
            "nginx",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx",
        ] {
            assert_eq!(
                resolve(nginx, &added),
                Ok(Some("docker.io/library/nginx".into())),
                "{nginx}"
            );
        }
        assert_eq!(resolve("other/app", &added), Ok(None));
        assert_eq!(resolve("ghcr.io/acme/gateway", &added), Ok(None));
    }

    #[test]
    fn literal_names_of_existing_stores_still_resolve() {
        let stored = [
            "cli/app",
            "registry.local_5000/team/app",
            "airlock/apps/shop",
        ];
        for name in stored {
            assert_eq!(resolve(name, &stored), Ok(Some(name.into())), "{name}");
        }
        assert_eq!(
            resolve("registry.local:5000/team/app", &stored),
            Ok(Some("registry.local_5000/team/app".into()))
        );
    }

    #[test]
    fn two_repositories_for_one_name_are_an_error_naming_both() {
        let both = ["acme/gateway", "docker.io/acme/gateway"];
        let err = resolve("acme/gateway", &both).expect_err("ambiguous");
        assert_eq!(
            err.to_string(),
            "ambiguous repository name \"acme/gateway\": the store holds both acme/gateway \
             and docker.io/acme/gateway"
        );
        assert!(matches!(&err, Error::AmbiguousName { stored, .. } if stored.len() == 2));
        // The fully qualified name is not ambiguous.
        assert_eq!(
            resolve("docker.io/acme/gateway", &both),
            Ok(Some("docker.io/acme/gateway".into()))
        );
        let query: RepoQuery = "acme/gateway".parse().expect("name");
        assert!(query.place(store(&both)).is_err(), "a write is refused too");
    }

    #[test]
    fn writes_go_where_reads_look_else_to_the_name() {
        assert_eq!(place("cli/app", &[]), "cli/app");
        assert_eq!(place("nginx", &[]), "nginx");
        assert_eq!(
            place("acme/gateway", &["docker.io/acme/gateway"]),
            "docker.io/acme/gateway"
        );
        assert_eq!(place("acme/gateway", &["acme/gateway"]), "acme/gateway");
        assert_eq!(
            place("registry.local:5000/team/app", &[]),
            "registry.local_5000/team/app"
        );
    }

    #[test]
    fn direct_names_are_the_shortest_that_read_the_repository() {
        let stored = [
            "docker.io/library/nginx",
            "docker.io/acme/gateway",
            "ghcr.io/org/app",
            "cli/app",
            "registry.local_5000/team/app",
        ];
        assert_eq!(
            direct("docker.io/library/nginx", &stored).as_deref(),
            Some("nginx")
        );
        assert_eq!(
            direct("docker.io/acme/gateway", &stored).as_deref(),
            Some("acme/gateway")
        );
        assert_eq!(
            direct("ghcr.io/org/app", &stored).as_deref(),
            Some("ghcr.io/org/app")
        );
        assert_eq!(direct("cli/app", &stored).as_deref(), Some("cli/app"));
        assert_eq!(
            direct("registry.local_5000/team/app", &stored).as_deref(),
            Some("registry.local_5000/team/app")
        );
        // A pushed `nginx` takes the short name: the added one is `library/nginx`.
        let shadowed = ["nginx", "docker.io/library/nginx"];
        assert_eq!(
            direct("docker.io/library/nginx", &shadowed).as_deref(),
            Some("library/nginx")
        );
        assert_eq!(direct("nginx", &shadowed), None, "ambiguous");
        let both = ["acme/gateway", "docker.io/acme/gateway"];
        assert_eq!(
            direct("docker.io/acme/gateway", &both).as_deref(),
            Some("docker.io/acme/gateway")
        );
        assert_eq!(direct("acme/gateway", &both), None);
    }

    /// Repository paths from the grammar's alphabet, short so that collisions happen.
    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-c]{1,2}", 1..4).prop_map(|c| c.join("/"))
    }

    /// A store of names as add (docker.io, ghcr.io) and push (literal) make them.
    fn stored_names() -> impl Strategy<Value = BTreeSet<String>> {
        let one = (path(), 0..3u8).prop_map(|(p, how)| match how {
            0 => p,
            1 => format!(
                "docker.io/{}",
                if p.contains('/') {
                    p
                } else {
                    format!("library/{p}")
                }
            ),
            _ => format!("ghcr.io/{p}"),
        });
        prop::collection::btree_set(one, 0..8)
    }

    proptest! {
        #[test]
        fn rule_holds(stored in stored_names(), asked in path()) {
            let names: Vec<&str> = stored.iter().map(String::as_str).collect();
            let query: RepoQuery = asked.parse().expect("grammar path");
            let held: Vec<String> = query
                .candidates()
                .map(ToString::to_string)
                .filter(|c| stored.contains(c))
                .collect();
            match resolve(&asked, &names) {
                // Found: the name itself if stored, else its docker form, and never both.
                Ok(Some(found)) => {
                    prop_assert_eq!(held.len(), 1);
                    prop_assert_eq!(&found, &held[0]);
                }
                Ok(None) => prop_assert!(held.is_empty()),
                Err(Error::AmbiguousName { stored: two, .. }) => {
                    prop_assert_eq!(two.iter().map(ToString::to_string).collect::<Vec<_>>(), held);
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
            // A write lands where a later read of the same name finds it.
            if let Ok(placed) = query.place(store(&names)) {
                let mut after = names.clone();
                let placed = placed.to_string();
                after.push(&placed);
                prop_assert_eq!(resolve(&asked, &after), Ok(Some(placed.clone())));
            }
        }

        #[test]
        fn every_stored_name_has_a_direct_name_that_reads_it_unless_shadowed(
            stored in stored_names(),
        ) {
            let names: Vec<&str> = stored.iter().map(String::as_str).collect();
            for s in &stored {
                match direct(s, &names) {
                    Some(d) => prop_assert_eq!(resolve(&d, &names), Ok(Some(s.clone()))),
                    // Only a literal path whose docker form is stored too has none.
                    None => {
                        let q: RepoQuery = s.parse().expect("stored");
                        prop_assert_eq!(q.candidates().filter(|c| stored.contains(c.as_str())).count(), 2);
                    }
                }
            }
        }
    }
}
