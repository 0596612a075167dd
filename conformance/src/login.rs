//! How [`Registry`](crate::Registry) logs in: not at all, Basic credentials on every request
//! (distribution's htpasswd mode), or the token flow (a `Bearer` challenge answered with a
//! token from the challenge's realm, fetched with Basic credentials or anonymously, cached per
//! scope, and the request sent again).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::STANDARD};

/// The credentials a registry client presents.
#[derive(Clone, Debug, Default)]
pub(crate) enum Login {
    /// None.
    #[default]
    Anonymous,
    /// `Authorization: Basic` on every request.
    Basic { user: String, password: String },
    /// The token flow; tokens fetched with these credentials (anonymously when `None`).
    Token {
        credentials: Option<(String, String)>,
        tokens: Arc<Mutex<HashMap<String, String>>>,
    },
}

impl Login {
    /// The header sent before any challenge: Basic credentials, or the token fetched last
    /// (a client pushing to one repository reuses its token; a body sent into a 401 may be cut
    /// off by the server).
    pub(crate) fn preemptive(&self) -> Option<String> {
        match self {
            Login::Basic { user, password } => Some(basic(user, password)),
            Login::Token { .. } => self.cached(LATEST).map(|t| format!("Bearer {t}")),
            Login::Anonymous => None,
        }
    }

    /// A token cached for `scope`.
    pub(crate) fn cached(&self, scope: &str) -> Option<String> {
        match self {
            Login::Token { tokens, .. } => tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(scope)
                .cloned(),
            _ => None,
        }
    }

    /// Remembers the token for `scope`, and as the latest.
    pub(crate) fn remember(&self, scope: &str, token: &str) {
        if let Login::Token { tokens, .. } = self {
            let mut tokens = tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.insert(scope.to_owned(), token.to_owned());
            tokens.insert(LATEST.to_owned(), token.to_owned());
        }
    }
}

/// The key of the latest token (no scope starts with a NUL).
const LATEST: &str = "\0latest";

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A `Bearer` challenge's parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// The `Bearer` challenge in a `WWW-Authenticate` value, if there is one. Values are quoted
/// strings that may hold commas (`scope="repository:a:pull,push"`).
pub(crate) fn parse_bearer(header: &str) -> Option<Challenge> {
    let rest = header.trim();
    let (scheme, mut rest) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut challenge = Challenge::default();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_at(after.find(',').unwrap_or(after.len())),
        };
        match key.trim() {
            "realm" => challenge.realm = value.to_owned(),
            "service" => challenge.service = Some(value.to_owned()),
            "scope" => challenge.scope = Some(value.to_owned()),
            _ => {}
        }
        rest = after;
    }
    (!challenge.realm.is_empty()).then_some(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_values() {
        let c = parse_bearer(
            r#"Bearer realm="https://r.test/auth/token",service="airlock",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://r.test/auth/token");
        assert_eq!(c.service.as_deref(), Some("airlock"));
        assert_eq!(c.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(parse_bearer(r#"Basic realm="x""#), None);
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(basic("a", "b"), "Basic YTpi");
    }
}
