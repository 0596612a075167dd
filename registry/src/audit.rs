//! The audit log: every push, delete, tag move and finished upload, with the account and the
//! client address, as `tracing` events at info level with target `airlock::audit` (route them
//! with `RUST_LOG=airlock::audit=info` or a subscriber filter). Writes refused by access rules
//! are logged there too.

use std::net::SocketAddr;

use axum::http::StatusCode;

use crate::endpoint::Endpoint;

/// The audit log's tracing target.
pub const AUDIT_TARGET: &str = "airlock::audit";

/// A write about to be handled, for the log line once its status is known.
#[derive(Debug)]
pub(crate) struct Audit {
    action: &'static str,
    repository: String,
    target: String,
}

impl Audit {
    /// The audit record of `endpoint`, if it writes.
    pub(crate) fn of(endpoint: &Endpoint) -> Option<Audit> {
        use Endpoint as E;
        let (action, name, target) = match endpoint {
            E::PutManifest {
                name,
                reference,
                tags,
            } => {
                let mut target = reference.to_string();
                for tag in tags {
                    target.push_str(&format!(" +tag {tag}"));
                }
                ("push manifest", name, target)
            }
            E::DeleteManifest { name, reference } => {
                ("delete manifest", name, reference.to_string())
            }
            E::DeleteBlob { name, digest } => ("delete blob", name, digest.to_string()),
            E::PutUpload { name, digest, .. } => ("upload blob", name, digest.to_string()),
            E::StartUpload {
                name,
                digest: Some(digest),
                ..
            } => ("upload blob", name, digest.to_string()),
            E::StartUpload {
                name,
                mount: Some(digest),
                from,
                ..
            } => {
                let from = from.as_ref().map_or("-".to_owned(), |f| f.to_string());
                ("mount blob", name, format!("{digest} from {from}"))
            }
            _ => return None,
        };
        Some(Audit {
            action,
            repository: name.to_string(),
            target,
        })
    }

    /// Logs the write: done (2xx), refused by access (401, 403), or failed otherwise.
    pub(crate) fn log(&self, status: StatusCode, user: &str, client: Option<SocketAddr>) {
        let client = client.map_or("-".to_owned(), |c| c.ip().to_string());
        let outcome = match status.as_u16() {
            200..=299 => "done",
            401 | 403 => "refused",
            _ => "failed",
        };
        tracing::info!(
            target: AUDIT_TARGET,
            user,
            client = %client,
            action = self.action,
            repository = %self.repository,
            reference = %self.target,
            status = status.as_u16(),
            outcome,
            "{} {}:{} by {user} from {client}: {outcome}",
            self.action,
            self.repository,
            self.target,
        );
    }
}
