//! Who may use the registry: accounts, access rules and the two ways clients log in, decided in
//! one place so handlers never see credentials.
//!
//! An [`Auth`] runs in one of three modes, chosen at startup ([`Auth::load`]) and named by the
//! startup line ([`Auth::summary`]):
//! - open: no accounts and a loopback address (or `auth.anonymous_write`): everyone may do
//!   everything, as before accounts existed;
//! - pull only: no accounts on a non-loopback address: pulls are anonymous, every write is 403
//!   DENIED with a message naming the settings that open it;
//! - accounts: an htpasswd file and access rules. A request is admitted by its Basic
//!   credentials (distribution's htpasswd mode) or by a bearer token from the token endpoint
//!   (`/auth/token`, the token flow), else it is anonymous; a request that needs more gets 401
//!   UNAUTHORIZED with a `WWW-Authenticate` challenge, or 403 DENIED when the account is known
//!   and the rules refuse.
//!
//! `gate` maps each [`Endpoint`](crate::Endpoint) to the action it needs and admits or refuses
//! a request; `policy` holds the rules, `htpasswd` the accounts, `token` the tokens.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub(crate) use self::gate::Caller;
pub use self::policy::{AccessRule, Action};
use self::{htpasswd::Users, policy::Policy, token::Tokens};
use crate::serve_error::ServeError;

mod gate;
mod htpasswd;
mod policy;
mod token;

pub(crate) use self::gate::{Credentials, TokenReply, realm};

/// The `service` of tokens and challenges.
pub const SERVICE: &str = "airlock";

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/auth/token";

/// What a client that must log in is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// `WWW-Authenticate: Bearer realm=..,service=..,scope=..`: the token flow.
    #[default]
    Bearer,
    /// `WWW-Authenticate: Basic realm=..`: the password on every request.
    Basic,
}

/// The accounts and access settings, as the CLI reads them from `airlock.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// The htpasswd file; `None` means no accounts.
    pub htpasswd: Option<PathBuf>,
    /// Group name to account names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Access rules; none means every account may do everything.
    pub rules: Vec<AccessRule>,
    /// With accounts, anyone may pull every repository without logging in.
    pub anonymous_pull: bool,
    /// Without accounts on a non-loopback address, anyone may write.
    pub anonymous_write: bool,
    /// The challenge sent to clients that must log in.
    pub challenge: Challenge,
    /// How long a bearer token is valid.
    pub token_lifetime: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            htpasswd: None,
            groups: BTreeMap::new(),
            rules: Vec::new(),
            anonymous_pull: false,
            anonymous_write: false,
            challenge: Challenge::Bearer,
            token_lifetime: Duration::from_secs(300),
        }
    }
}

/// Which of the three modes a registry runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone may do everything.
    Open,
    /// Pulls are anonymous; writes are refused.
    PullOnly,
    /// Accounts and access rules.
    Accounts,
}

/// The registry's access decisions; see the module docs.
#[derive(Debug)]
pub struct Auth {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Open { why: &'static str },
    PullOnly { listen: SocketAddr },
    Accounts(Box<Accounts>),
}

#[derive(Debug)]
pub(crate) struct Accounts {
    users: Users,
    policy: Policy,
    anonymous_pull: bool,
    challenge: Challenge,
    tokens: Tokens,
}

impl Auth {
    /// Everyone may do everything: what [`AppState::new`](crate::AppState::new) uses, for
    /// tests and a registry on a loopback address.
    pub fn open() -> Auth {
        Auth {
            mode: Mode::Open {
                why: "no accounts configured",
            },
        }
    }

    /// The mode `settings` call for on `listen`: accounts when an htpasswd file is set (the
    /// token key is kept in `key_dir`, the store root); else open on a loopback address or with
    /// `anonymous_write`; else pull only.
    pub fn load(
        settings: &AuthSettings,
        listen: SocketAddr,
        key_dir: &Path,
    ) -> Result<Auth, ServeError> {
        let mode = match &settings.htpasswd {
            Some(path) => {
                let users = Users::load(path)?;
                let policy = Policy::new(&settings.rules, &settings.groups)?;
                let key = token::load_key(key_dir)?;
                Mode::Accounts(Box::new(Accounts {
                    users,
                    policy,
                    anonymous_pull: settings.anonymous_pull,
                    challenge: settings.challenge,
                    tokens: Tokens::new(key, SERVICE, settings.token_lifetime),
                }))
            }
            None if listen.ip().is_loopback() => Mode::Open {
                why: "no accounts, loopback address",
            },
            None if settings.anonymous_write => Mode::Open {
                why: "no accounts, auth.anonymous_write = true",
            },
            None => Mode::PullOnly { listen },
        };
        Ok(Auth { mode })
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        match self.mode {
            Mode::Open { .. } => AuthMode::Open,
            Mode::PullOnly { .. } => AuthMode::PullOnly,
            Mode::Accounts(_) => AuthMode::Accounts,
        }
    }

    /// One line saying who may do what, for the startup line.
    pub fn summary(&self) -> String {
        match &self.mode {
            Mode::Open { why } => format!("anyone may pull and push ({why})"),
            Mode::PullOnly { .. } => "pulls only: pushes and deletes are refused (no accounts on \
                 a non-loopback address; set auth.htpasswd, or auth.anonymous_write = true)"
                .to_owned(),
            Mode::Accounts(a) => format!(
                "{} from {}, {}; anonymous pull {}; clients asked for {} credentials",
                match a.users.len() {
                    1 => "1 account".to_owned(),
                    n => format!("{n} accounts"),
                },
                a.users.path().display(),
                match a.policy.len() {
                    0 => "no access rules: every account may do everything".to_owned(),
                    1 => "1 access rule".to_owned(),
                    n => format!("{n} access rules"),
                },
                if a.anonymous_pull { "on" } else { "off" },
                match a.challenge {
                    Challenge::Bearer => "token (Bearer)",
                    Challenge::Basic => "Basic",
                },
            ),
        }
    }

    /// Reads the htpasswd file again (on SIGHUP); a file that no longer parses leaves the
    /// accounts as they were. Returns the number of accounts, `None` without accounts.
    pub fn reload(&self) -> Result<Option<usize>, ServeError> {
        match &self.mode {
            Mode::Accounts(a) => a.users.reload().map(Some),
            _ => Ok(None),
        }
    }
}
