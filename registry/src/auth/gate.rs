//! Admitting a request: who is asking (Basic credentials, a bearer token, or nobody), what the
//! endpoint needs, and the 401 or 403 that refuses it; and the grants of the token endpoint.

use std::{net::SocketAddr, time::SystemTime};

use airlock_oci::RepoName;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

use super::{
    Accounts, Auth, Challenge, Mode, SERVICE, TOKEN_PATH,
    policy::Action,
    token::{Claims, Grant, Invalid},
};
use crate::{
    endpoint::Endpoint,
    error::{ErrorCode, RegistryError},
};

/// Who a request comes from, once admitted.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// Nobody logged in, on a registry without accounts.
    Anyone,
    /// Nobody logged in, on a registry with accounts.
    Anonymous,
    /// An account, by Basic credentials.
    User(String),
    /// A bearer token's holder.
    Token(Box<Claims>),
}

impl Caller {
    /// The account name for logs; `-` for nobody.
    pub(crate) fn name(&self) -> &str {
        match self {
            Caller::Anyone | Caller::Anonymous => "-",
            Caller::User(user) => user,
            Caller::Token(claims) => claims.user().unwrap_or("-"),
        }
    }
}

/// The credentials a request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// `Authorization: Basic`, name and password.
    Basic(String, String),
    /// `Authorization: Bearer`.
    Bearer(String),
}

impl Credentials {
    /// The request's `Authorization`; an unreadable one is a 401.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Option<Credentials>, RegistryError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let bad = || RegistryError::new(ErrorCode::Unauthorized, "unreadable Authorization header");
        let text = value.to_str().map_err(|_| bad())?.trim();
        let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD.decode(rest).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, password) = text.split_once(':').ok_or_else(bad)?;
            Ok(Some(Credentials::Basic(
                user.to_owned(),
                password.to_owned(),
            )))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Some(Credentials::Bearer(rest.to_owned())))
        } else {
            Err(RegistryError::new(
                ErrorCode::Unauthorized,
                format!("unsupported Authorization scheme {scheme:?}: use Basic or Bearer"),
            ))
        }
    }
}

/// What an endpoint needs from its caller.
enum Need<'a> {
    /// `/v2/`: to be someone, when the registry has accounts.
    Login,
    /// The catalog: to see any repository.
    Catalog,
    /// An action on a repository.
    Repo(&'a RepoName, Action),
}

fn need(endpoint: &Endpoint) -> Need<'_> {
    use Endpoint as E;
    match endpoint {
        E::Base => Need::Login,
        E::Catalog { .. } => Need::Catalog,
        E::GetManifest { name, .. }
        | E::HeadManifest { name, .. }
        | E::GetBlob { name, .. }
        | E::HeadBlob { name, .. }
        | E::Tags { name, .. }
        | E::Referrers { name, .. } => Need::Repo(name, Action::Pull),
        E::PutManifest { name, .. }
        | E::StartUpload { name, .. }
        | E::PatchUpload { name, .. }
        | E::PutUpload { name, .. }
        | E::GetUpload { name, .. }
        | E::DeleteUpload { name, .. } => Need::Repo(name, Action::Push),
        E::DeleteManifest { name, .. } | E::DeleteBlob { name, .. } => {
            Need::Repo(name, Action::Delete)
        }
    }
}

/// The scope a client asks the token endpoint for to do what `need` needs; a mount adds its
/// source repository (space-separated scopes, as distribution writes them).
fn scope(need: &Need<'_>, mount_from: Option<&RepoName>) -> Option<String> {
    let scope = match need {
        Need::Login => None,
        Need::Catalog => Some("registry:catalog:*".to_owned()),
        Need::Repo(name, Action::Push) => Some(format!("repository:{name}:pull,push")),
        Need::Repo(name, action) => Some(format!("repository:{name}:{action}")),
    };
    match (scope, mount_from) {
        (Some(scope), Some(from)) => Some(format!("{scope} repository:{from}:pull")),
        (scope, _) => scope,
    }
}

/// The repository a mount request would read from.
fn mount_source(endpoint: &Endpoint) -> Option<&RepoName> {
    match endpoint {
        Endpoint::StartUpload {
            mount: Some(_),
            from: Some(from),
            ..
        } => Some(from),
        _ => None,
    }
}

/// The token endpoint's URL as the client reached this server: `https://HOST/auth/token`.
pub(crate) fn realm(headers: &HeaderMap, uri: &Uri, tls: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}{TOKEN_PATH}")
}

/// How a refused request is answered.
enum Refusal {
    /// 401: log in (or log in again), with the scope needed.
    Login,
    /// 401 with `error="insufficient_scope"`: fetch a token for this scope.
    Scope,
    /// 403: the account may not.
    Denied,
}

impl Auth {
    /// Admits a request to `endpoint` or refuses it (401 with a challenge, 403 DENIED). A mount
    /// from a repository the caller may not pull is turned into a plain upload (202), as the
    /// spec lets a registry do.
    pub(crate) async fn admit(
        &self,
        headers: &HeaderMap,
        realm: &str,
        endpoint: &mut Endpoint,
    ) -> Result<Caller, RegistryError> {
        let accounts = match &self.mode {
            Mode::Open { .. } => return Ok(Caller::Anyone),
            Mode::PullOnly { listen } => {
                return match need(endpoint) {
                    Need::Repo(name, action) if action != Action::Pull => {
                        Err(pull_only(*listen, action, name))
                    }
                    _ => Ok(Caller::Anyone),
                };
            }
            Mode::Accounts(a) => a,
        };
        let caller = accounts.identify(headers, realm).await?;
        let from = mount_source(endpoint);
        let need = need(endpoint);
        let refusal = match &need {
            Need::Login => matches!(caller, Caller::Anonymous).then_some(Refusal::Login),
            Need::Catalog => (matches!(caller, Caller::Anonymous) && !accounts.anonymous_pull)
                .then_some(Refusal::Login),
            Need::Repo(name, action) => accounts.refusal(&caller, *action, name.as_str()),
        };
        // A mount whose source the token does not cover, though the account may read it, asks
        // for a token that does; a source the caller may not read turns it into an upload.
        let source = from.and_then(|f| accounts.refusal(&caller, Action::Pull, f.as_str()));
        match (refusal, source) {
            (Some(refusal), _) | (None, Some(refusal @ Refusal::Scope)) => {
                return Err(accounts.refuse(refusal, &need, from, realm));
            }
            (None, Some(_)) => {
                if let Endpoint::StartUpload { mount, from, .. } = endpoint {
                    *mount = None;
                    *from = None;
                }
            }
            (None, None) => {}
        }
        Ok(caller)
    }

    /// Whether `caller` may pull `repo` (the catalog lists only those).
    pub(crate) fn may_pull(&self, caller: &Caller, repo: &str) -> bool {
        match &self.mode {
            Mode::Open { .. } | Mode::PullOnly { .. } => true,
            Mode::Accounts(a) => match caller {
                Caller::Token(claims) => match claims.user() {
                    Some(user) => a.policy.allows(user, Action::Pull, repo),
                    None => a.anonymous_pull,
                },
                other => a.refusal(other, Action::Pull, repo).is_none(),
            },
        }
    }

    /// The token endpoint: a token granting, of each `repository:NAME:ACTIONS` scope asked
    /// for, the actions `credentials` (or anonymity) are allowed. 401 for bad credentials; 404
    /// on a registry without accounts, which never asks for tokens.
    pub(crate) async fn issue_token(
        &self,
        credentials: Option<Credentials>,
        scopes: &[String],
    ) -> Result<TokenReply, RegistryError> {
        let Mode::Accounts(a) = &self.mode else {
            return Err(RegistryError::new(
                ErrorCode::Unsupported,
                "this registry has no accounts: requests need no token",
            )
            .with_status(axum::http::StatusCode::NOT_FOUND));
        };
        let user = match credentials {
            Some(Credentials::Basic(user, password)) if !user.is_empty() => {
                if !a.users.check(&user, &password).await {
                    return Err(RegistryError::new(
                        ErrorCode::Unauthorized,
                        "invalid username or password",
                    )
                    .with_header(header::WWW_AUTHENTICATE, basic_challenge()));
                }
                Some(user)
            }
            _ => None,
        };
        let grants = scopes
            .iter()
            .filter_map(|s| a.grant(user.as_deref(), s))
            .collect();
        let (token, claims) = a.tokens.issue(user.as_deref(), grants);
        let issued = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(claims.iat);
        Ok(TokenReply {
            access_token: token.clone(),
            token,
            expires_in: a.tokens.lifetime().as_secs(),
            issued_at: humantime::format_rfc3339_seconds(issued).to_string(),
        })
    }
}

/// The token endpoint's answer (distribution's and OAuth2's field names).
#[derive(Debug, Serialize)]
pub(crate) struct TokenReply {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

impl Accounts {
    async fn identify(&self, headers: &HeaderMap, realm: &str) -> Result<Caller, RegistryError> {
        let login = |message: &str, error: Option<&str>| {
            RegistryError::new(ErrorCode::Unauthorized, message.to_owned())
                .with_header(header::WWW_AUTHENTICATE, self.challenge(realm, None, error))
        };
        match Credentials::of(headers).map_err(|e| login(e.message(), None))? {
            None => Ok(Caller::Anonymous),
            Some(Credentials::Basic(user, _)) if user.is_empty() => Ok(Caller::Anonymous),
            Some(Credentials::Basic(user, password)) => {
                match self.users.check(&user, &password).await {
                    true => Ok(Caller::User(user)),
                    false => Err(login("invalid username or password", None)),
                }
            }
            Some(Credentials::Bearer(token)) => match self.tokens.verify(&token) {
                Ok(claims) => Ok(Caller::Token(Box::new(claims))),
                Err(Invalid::Expired) => Err(login("the token has expired", Some("invalid_token"))),
                Err(Invalid::Malformed) => Err(login(
                    "the token is not one this registry issued",
                    Some("invalid_token"),
                )),
            },
        }
    }

    /// Why `caller` may not do `action` to `repo`, if it may not.
    fn refusal(&self, caller: &Caller, action: Action, repo: &str) -> Option<Refusal> {
        let anonymous_ok = action == Action::Pull && self.anonymous_pull;
        match caller {
            Caller::Anyone => None,
            Caller::Anonymous => (!anonymous_ok).then_some(Refusal::Login),
            Caller::User(user) => {
                (!self.policy.allows(user, action, repo)).then_some(Refusal::Denied)
            }
            Caller::Token(claims) => {
                if claims.access.iter().any(|g| g.allows(action, repo)) {
                    return None;
                }
                match claims.user() {
                    Some(user) if self.policy.allows(user, action, repo) => Some(Refusal::Scope),
                    Some(_) => Some(Refusal::Denied),
                    None if anonymous_ok => Some(Refusal::Scope),
                    None => Some(Refusal::Login),
                }
            }
        }
    }

    fn refuse(
        &self,
        refusal: Refusal,
        need: &Need<'_>,
        from: Option<&RepoName>,
        realm: &str,
    ) -> RegistryError {
        let detail = match need {
            Need::Repo(name, action) => serde_json::json!([{
                "Type": "repository", "Name": name.as_str(), "Action": action.as_str(),
            }]),
            Need::Catalog => serde_json::json!([{
                "Type": "registry", "Name": "catalog", "Action": "*",
            }]),
            Need::Login => serde_json::Value::Null,
        };
        let what = match need {
            Need::Repo(name, action) => format!("{action} on repository {name}"),
            Need::Catalog => "listing the catalog".to_owned(),
            Need::Login => "this registry".to_owned(),
        };
        let scope = scope(need, from);
        let err = match refusal {
            Refusal::Login => RegistryError::new(
                ErrorCode::Unauthorized,
                format!("authentication required for {what}"),
            )
            .with_header(header::WWW_AUTHENTICATE, self.challenge(realm, scope, None)),
            Refusal::Scope => RegistryError::new(
                ErrorCode::Unauthorized,
                format!("the token does not grant {what}"),
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                self.challenge(realm, scope, Some("insufficient_scope")),
            ),
            Refusal::Denied => RegistryError::new(
                ErrorCode::Denied,
                format!("requested access to the resource is denied: {what}"),
            ),
        };
        match detail {
            serde_json::Value::Null => err,
            detail => err.with_detail(detail),
        }
    }

    fn challenge(&self, realm: &str, scope: Option<String>, error: Option<&str>) -> HeaderValue {
        if self.challenge == Challenge::Basic {
            return basic_challenge();
        }
        let mut text = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
        if let Some(scope) = scope {
            text.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            text.push_str(&format!(",error=\"{error}\""));
        }
        // Realm hosts are filtered to visible ASCII, scopes are repository names.
        HeaderValue::try_from(text).unwrap_or_else(|_| basic_challenge())
    }

    /// The part of `scope` (`type:name:actions`) this caller gets, if any.
    fn grant(&self, user: Option<&str>, scope: &str) -> Option<Grant> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind = kind.split('(').next().unwrap_or(kind);
        if kind == "registry" && name == "catalog" {
            let allowed = user.is_some() || self.anonymous_pull;
            return allowed.then(|| Grant {
                kind: kind.to_owned(),
                name: name.to_owned(),
                actions: vec!["*".to_owned()],
            });
        }
        if kind != "repository" || name.parse::<RepoName>().is_err() {
            return None;
        }
        let wanted: Vec<Action> = match actions {
            "*" => Action::ALL.to_vec(),
            list => list
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect(),
        };
        let caller = match user {
            Some(u) => Caller::User(u.to_owned()),
            None => Caller::Anonymous,
        };
        let granted: Vec<String> = wanted
            .into_iter()
            .filter(|&a| self.refusal(&caller, a, name).is_none())
            .map(|a| a.as_str().to_owned())
            .collect();
        (!granted.is_empty()).then(|| Grant {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: granted,
        })
    }
}

fn basic_challenge() -> HeaderValue {
    HeaderValue::from_static("Basic realm=\"airlock\"")
}

/// 403 for a write on a registry serving pulls only, naming the settings that open it.
fn pull_only(listen: SocketAddr, action: Action, name: &RepoName) -> RegistryError {
    RegistryError::new(
        ErrorCode::Denied,
        format!(
            "{action} on repository {name} refused: this registry listens on {listen} without \
             accounts, so it serves pulls only; configure accounts (auth.htpasswd), or set \
             auth.anonymous_write = true to let anyone push and delete"
        ),
    )
}
