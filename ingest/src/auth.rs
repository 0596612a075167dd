//! Credentials for upstream registries: `--username` with `--password-stdin`, else the
//! `auths` of docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`); and `WWW-Authenticate` challenges.

use std::{fmt, path::PathBuf};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT},
};

use crate::error::{Context as _, Result, err};

/// A user name and password for basic auth or a token request.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization: Basic ...` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }

    /// Credentials for `host` from docker's config file, if it has any.
    pub fn from_docker_config(host: &str) -> Result<Option<Credentials>> {
        let path = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker/config.json"),
                None => return Ok(None),
            },
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
        };
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| err!(Auth, "{}: not JSON: {e}", path.display()))?;
        Self::from_auths(&v, host).context(|| format!("{}", path.display()))
    }

    /// The entry of a docker config's `auths` that names `host` (`https://index.docker.io/v1/`
    /// and its siblings name Docker Hub).
    fn from_auths(config: &serde_json::Value, host: &str) -> Result<Option<Credentials>> {
        let Some(auths) = config["auths"].as_object() else {
            return Ok(None);
        };
        let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
        let wanted: Vec<&str> = if hub.contains(&host) {
            hub.to_vec()
        } else {
            vec![host]
        };
        for (key, entry) in auths {
            let bare = key
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let bare = bare.split('/').next().unwrap_or(bare);
            if !wanted.contains(&bare) {
                continue;
            }
            if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
                // docker writes padding; other tools leave it out.
                let decoded = STANDARD_PAD_INDIFFERENT
                    .decode(auth.trim())
                    .map_err(|_| err!(Auth, "auths.{key}.auth is not base64"))?;
                let text = String::from_utf8(decoded)
                    .map_err(|_| err!(Auth, "auths.{key}.auth is not UTF-8"))?;
                let (user, pass) = text
                    .split_once(':')
                    .ok_or_else(|| err!(Auth, "auths.{key}.auth is not user:password"))?;
                return Ok(Some(Credentials {
                    username: user.to_owned(),
                    password: pass.to_owned(),
                }));
            }
            if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
                return Ok(Some(Credentials {
                    username: u.to_owned(),
                    password: p.to_owned(),
                }));
            }
        }
        Ok(None)
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Basic auth.
    Basic,
    /// A token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses `Bearer realm="...",service="...",scope="..."` (quoted values may hold commas),
    /// or `Basic realm="..."`; anything else is taken as Basic.
    pub fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::Basic;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match get("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: get("service"),
            },
            None => Challenge::Basic,
        }
    }
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_standard_base64() {
        let c = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(c.basic_header(), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), Challenge::Basic);
        assert_eq!(Challenge::parse("Bearer"), Challenge::Basic);
    }

    #[test]
    fn docker_config_auths() {
        let cfg = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": STANDARD.encode(b"hub:secret")},
            "registry.local:5000": {"auth": "bWU6cHc"},
            "bad.example": {"auth": "not base64!"},
        }});
        let hub = Credentials::from_auths(&cfg, "registry-1.docker.io")
            .expect("ok")
            .expect("found");
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        let local = Credentials::from_auths(&cfg, "registry.local:5000")
            .expect("ok")
            .expect("found");
        assert_eq!(local.username, "me", "padding is optional");
        assert!(Credentials::from_auths(&cfg, "bad.example").is_err());
        assert!(
            Credentials::from_auths(&cfg, "ghcr.io")
                .expect("ok")
                .is_none()
        );
    }
}
