//! Bearer tokens of the token flow: issued by the token endpoint for the scopes an account is
//! granted, checked on every request that carries one.
//!
//! A token is a JSON Web Token signed with HMAC-SHA256 (`alg: HS256`) under a key only this
//! registry holds: `header.claims.signature`, each base64url without padding. Its claims are
//! distribution's: `iss` and `aud` the service, `sub` the account (empty for anonymous), `iat`,
//! `nbf`, `exp` (Unix seconds), a random `jti`, and `access`, the granted scopes
//! (`{"type":"repository","name":..,"actions":[..]}`). Clients treat tokens as opaque.
//!
//! The key is 32 random bytes kept hex-encoded in [`KEY_FILE`] under the store root, created
//! owner-only on first start, so tokens survive a restart; a key file others can read is
//! refused.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{auth::policy::Action, serve_error::ServeError};

/// The key file, under the store root.
pub(crate) const KEY_FILE: &str = "registry-token.key";

/// Clock difference tolerated between issuing and checking (one server: only rounding).
const LEEWAY_SECS: u64 = 5;

/// The one header this registry issues, `{"alg":"HS256","typ":"JWT"}`, encoded.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A granted scope, as the `access` claim lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    /// `repository` (or `registry` for the catalog).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name (`catalog` for the catalog).
    pub name: String,
    /// The actions granted.
    pub actions: Vec<String>,
}

impl Grant {
    /// Whether this grant allows `action` on repository `repo`.
    pub(crate) fn allows(&self, action: Action, repo: &str) -> bool {
        self.kind == "repository"
            && self.name == repo
            && self
                .actions
                .iter()
                .any(|a| a == action.as_str() || a == "*")
    }
}

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    /// The account, empty for anonymous.
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub access: Vec<Grant>,
}

impl Claims {
    /// The account the token was issued to, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        Some(self.sub.as_str()).filter(|s| !s.is_empty())
    }
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not a token of ours, or altered.
    Malformed,
    /// Past its `exp`.
    Expired,
}

/// Issues and checks tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    key: Vec<u8>,
    service: String,
    lifetime: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tokens {
    pub(crate) fn new(key: Vec<u8>, service: &str, lifetime: Duration) -> Tokens {
        Tokens {
            key,
            service: service.to_owned(),
            lifetime,
        }
    }

    /// How long a token lives.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; this never fails.
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A signed token for `user` (None: anonymous) granting `access`, and its claims.
    pub(crate) fn issue(&self, user: Option<&str>, access: Vec<Grant>) -> (String, Claims) {
        let now = now_secs();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            iss: self.service.clone(),
            sub: user.unwrap_or("").to_owned(),
            aud: self.service.clone(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime.as_secs(),
            jti: hex::encode(jti),
            access,
        };
        // Serializing plain strings and numbers cannot fail.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("{HEADER}.{body}");
        let signature = self.mac().chain_update(&signed).finalize().into_bytes();
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
        (token, claims)
    }

    /// The claims of a token this registry issued and that has not expired.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, Invalid> {
        let (signed, signature) = token.rsplit_once('.').ok_or(Invalid::Malformed)?;
        let (header, body) = signed.split_once('.').ok_or(Invalid::Malformed)?;
        if header != HEADER {
            return Err(Invalid::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Invalid::Malformed)?;
        self.mac()
            .chain_update(signed)
            .verify_slice(&signature)
            .map_err(|_| Invalid::Malformed)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Invalid::Malformed)?;
        if claims.aud != self.service {
            return Err(Invalid::Malformed);
        }
        let now = now_secs();
        if now >= claims.exp || claims.nbf > now + LEEWAY_SECS {
            return Err(Invalid::Expired);
        }
        Ok(claims)
    }
}

/// The signing key from `<dir>/KEY_FILE`, created with 32 random bytes (owner-only) when
/// absent. A key that others can read, or that is not 64 hex digits, is refused.
pub(crate) fn load_key(dir: &Path) -> Result<Vec<u8>, ServeError> {
    let path = dir.join(KEY_FILE);
    let bad = |what: String| ServeError::TokenKey {
        path: path.clone(),
        what,
    };
    match fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "is readable by others (mode {:o}): make it owner-only (chmod 600)",
                    mode & 0o777
                )));
            }
            let text = fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let key = hex::decode(text.trim()).map_err(|_| bad("is not hex".into()))?;
            if key.len() != 32 {
                return Err(bad(format!("holds {} bytes, not 32", key.len())));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| {
                    f.write_all(hex::encode(&key).as_bytes())?;
                    f.sync_all()
                })
                .map_err(|e| bad(format!("cannot be created: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(name: &str, actions: &[&str]) -> Grant {
        Grant {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn header_constant_is_hs256() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER).unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn tokens_verify_and_refuse_tampering() {
        let tokens = Tokens::new(vec![7; 32], "airlock", Duration::from_secs(300));
        let (token, claims) = tokens.issue(Some("alice"), vec![grant("app", &["pull"])]);
        let back = tokens.verify(&token).unwrap();
        assert_eq!(back.user(), Some("alice"));
        assert!(back.access[0].allows(Action::Pull, "app"));
        assert!(!back.access[0].allows(Action::Push, "app"));
        assert!(!back.access[0].allows(Action::Pull, "other"));
        assert_eq!(claims.exp - claims.iat, 300);
        // Another key, an altered body, garbage.
        let other = Tokens::new(vec![8; 32], "airlock", Duration::from_secs(300));
        assert_eq!(other.verify(&token).unwrap_err(), Invalid::Malformed);
        let (_, body_and_sig) = token.split_once('.').unwrap();
        let (_, sig) = body_and_sig.split_once('.').unwrap();
        let forged_claims = Claims {
            access: vec![grant("app", &["push"])],
            ..claims
        };
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{HEADER}.{forged_body}.{sig}");
        assert_eq!(tokens.verify(&forged).unwrap_err(), Invalid::Malformed);
        assert_eq!(tokens.verify("x.y").unwrap_err(), Invalid::Malformed);
        let elsewhere = Tokens::new(vec![7; 32], "other", Duration::from_secs(300));
        assert_eq!(elsewhere.verify(&token).unwrap_err(), Invalid::Malformed);
        let expired = Tokens::new(vec![7; 32], "airlock", Duration::ZERO);
        let (old, _) = expired.issue(None, vec![]);
        assert_eq!(tokens.verify(&old).unwrap_err(), Invalid::Expired);
    }

    #[test]
    fn the_key_is_created_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_key(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_key(dir.path()).unwrap(), key);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains("readable by others (mode 644)"), "{err}");
    }
}
