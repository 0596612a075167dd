//! Who may do what to which repositories: access rules over repository name patterns, users
//! and groups. A rule granting `push` grants `pull` too (a pushing client reads what it pushes:
//! blob checks, mounts). With no rules, every account may do everything, as distribution's
//! htpasswd mode does.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    str::FromStr,
};

use crate::serve_error::ServeError;

/// What a request does to a repository, as access rules and token scopes name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs, push manifests, move tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// Every action, in scope order.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The word in rules and scopes: `pull`, `push`, `delete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}; allowed: pull, push, delete"))
    }
}

/// One access rule as configured: whoever matches `users` (`"*"`: every account) or `groups`
/// may perform `actions` on repositories matching one of `repositories`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// Repository name patterns: `*` matches within a path segment, `**` across segments.
    pub repositories: Vec<String>,
    /// Account names, or `"*"` for every account.
    pub users: Vec<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// What the rule grants.
    pub actions: Vec<Action>,
}

/// The compiled rules and groups.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    patterns: Vec<Pattern>,
    any_account: bool,
    accounts: HashSet<String>,
    actions: Vec<Action>,
}

impl Policy {
    /// Compiles `rules`, resolving their groups through `groups`.
    pub(crate) fn new(
        rules: &[AccessRule],
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<Policy, ServeError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let bad = |what: String| ServeError::Rule { rule: i + 1, what };
                let patterns = rule
                    .repositories
                    .iter()
                    .map(|p| Pattern::parse(p).map_err(bad))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut accounts: HashSet<String> = rule.users.iter().cloned().collect();
                for group in &rule.groups {
                    let members = groups
                        .get(group)
                        .ok_or_else(|| bad(format!("group {group:?} is not defined")))?;
                    accounts.extend(members.iter().cloned());
                }
                Ok(Rule {
                    patterns,
                    any_account: accounts.remove("*"),
                    accounts,
                    actions: rule.actions.clone(),
                })
            })
            .collect::<Result<Vec<_>, ServeError>>()?;
        Ok(Policy { rules })
    }

    /// Number of rules.
    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether account `user` may do `action` to `repo`.
    pub(crate) fn allows(&self, user: &str, action: Action, repo: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|rule| {
            (rule.any_account || rule.accounts.contains(user))
                && rule
                    .actions
                    .iter()
                    .any(|&a| a == action || (a == Action::Push && action == Action::Pull))
                && rule.patterns.iter().any(|p| p.matches(repo))
        })
    }
}

/// A repository name pattern.
#[derive(Debug)]
struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`: any bytes but `/`.
    Star,
    /// `**`: any bytes.
    Stars,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b);
        if text.is_empty() || !text.bytes().all(ok) {
            return Err(format!(
                "repository pattern {text:?} may hold only a-z, 0-9, '.', '_', '-', '/' and '*'"
            ));
        }
        let bytes = text.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (b'*', Some(b'*')) => {
                    tokens.push(Token::Stars);
                    i += 2;
                }
                (b'*', _) => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                (b, _) => {
                    tokens.push(Token::Byte(b));
                    i += 1;
                }
            }
        }
        Ok(Pattern { tokens })
    }

    /// Whether `name` matches: one pass of dynamic programming over pattern and name, so no
    /// pattern can make matching slow.
    fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        // row[j]: the tokens so far match name[..j].
        let mut row = vec![false; name.len() + 1];
        row[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; name.len() + 1];
            match token {
                Token::Byte(b) => {
                    for j in 0..name.len() {
                        next[j + 1] = row[j] && name[j] == *b;
                    }
                }
                Token::Star | Token::Stars => {
                    next[0] = row[0];
                    for j in 0..name.len() {
                        let crosses = *token == Token::Stars || name[j] != b'/';
                        next[j + 1] = row[j + 1] || (next[j] && crosses);
                    }
                }
            }
            row = next;
        }
        row[name.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let m = |p: &str, n: &str| Pattern::parse(p).unwrap().matches(n);
        assert!(m("team/app", "team/app"));
        assert!(!m("team/app", "team/app2"));
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/a/b"));
        assert!(!m("team/*", "team"));
        assert!(m("team/**", "team/a/b"));
        assert!(m("**", "docker.io/library/nginx"));
        assert!(m("*/nginx", "library/nginx"));
        assert!(m("docker.io/**/nginx", "docker.io/library/nginx"));
        assert!(!m("docker.io/**/nginx", "docker.io/library/redis"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXX/bYYc"));
        assert!(Pattern::parse("Team/*").is_err());
        assert!(Pattern::parse("").is_err());
        // No backtracking blow-up.
        let long = format!("{}b", "a".repeat(200));
        assert!(!m(&"*a".repeat(40), &long));
    }

    #[test]
    fn rules_grant_per_user_group_and_action() {
        let groups = BTreeMap::from([("ops".to_owned(), vec!["bob".to_owned()])]);
        let rules = [
            AccessRule {
                repositories: vec!["apps/**".into()],
                groups: vec!["ops".into()],
                actions: vec![Action::Push, Action::Delete],
                ..AccessRule::default()
            },
            AccessRule {
                repositories: vec!["apps/*".into()],
                users: vec!["*".into()],
                actions: vec![Action::Pull],
                ..AccessRule::default()
            },
        ];
        let p = Policy::new(&rules, &groups).unwrap();
        assert!(p.allows("bob", Action::Push, "apps/a/b"));
        assert!(
            p.allows("bob", Action::Pull, "apps/a/b"),
            "push includes pull"
        );
        assert!(p.allows("bob", Action::Delete, "apps/x"));
        assert!(p.allows("alice", Action::Pull, "apps/x"));
        assert!(!p.allows("alice", Action::Pull, "apps/a/b"));
        assert!(!p.allows("alice", Action::Push, "apps/x"));
        assert!(!p.allows("bob", Action::Pull, "other"));
        assert!(Policy::default().allows("anyone", Action::Delete, "x"));
        let bad = [AccessRule {
            repositories: vec!["A".into()],
            ..AccessRule::default()
        }];
        let err = Policy::new(&bad, &groups).unwrap_err().to_string();
        assert!(
            err.starts_with("access rule 1: repository pattern \"A\""),
            "{err}"
        );
    }
}
