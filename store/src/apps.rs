//! Applications: the history of each application's versions and its current pointer.
//!
//! An application is a repository whose tags are its versions (`airlock/apps/NAME`, though the
//! store does not care about the name). Each event of its history (a version added or imported,
//! made current by hand or by a rollback, dropped by GC) is a row of the index's `app_events`
//! table, appended in the same transaction as the tag moves it goes with
//! ([`RepoChange::AppEvent`](crate::RepoChange::AppEvent)), so a version is current exactly when
//! its image tags point where it says. The current version is the one the latest event that
//! makes one current names. GC keeps the last versions of each application by when they were
//! added or imported ([`crate::GcOptions::keep_app_versions`]).

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Result, Store, index::WriteTx};

/// What an application event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppAction {
    /// The version was added (`airlock add -f app.yaml`) and made current.
    Add,
    /// The version arrived in an imported bundle and was made current.
    Import,
    /// The version was made current by hand (`airlock apps use`).
    Use,
    /// The version was made current by a rollback (`airlock apps rollback`).
    Rollback,
    /// GC dropped the version (beyond `gc.keep_app_versions`); its tag is gone.
    Drop,
}

impl AppAction {
    /// Whether the event makes its version current.
    pub fn makes_current(self) -> bool {
        !matches!(self, AppAction::Drop)
    }

    /// Whether the event records the version's arrival (orders versions for GC).
    pub fn arrives(self) -> bool {
        matches!(self, AppAction::Add | AppAction::Import)
    }

    /// The word shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppAction::Add => "add",
            AppAction::Import => "import",
            AppAction::Use => "use",
            AppAction::Rollback => "rollback",
            AppAction::Drop => "drop",
        }
    }
}

impl std::fmt::Display for AppAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of an application's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    /// Unix seconds.
    pub time: u64,
    /// What happened.
    pub action: AppAction,
    /// The version (the tag in the application's repository).
    pub version: String,
    /// The version's index at the time.
    pub digest: Digest,
    /// The version current before this event, if any.
    pub previous: Option<String>,
    /// Who: the OS user of the command, `bundle ID (NAME)` for an import, `gc` for a drop.
    pub by: String,
}

/// An application's versions and current pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppStatus {
    /// The application's repository.
    pub repo: String,
    /// The current version and its index, if any version was made current.
    pub current: Option<(String, Digest)>,
    /// The versions held (the repository's tags), newest arrival first, with their index and
    /// when they last arrived (unix seconds; `None` for versions recorded before histories).
    pub versions: Vec<(String, Digest, Option<u64>)>,
}

impl Store {
    /// Every event of the application at `repo`, oldest first.
    pub fn app_history(&self, repo: &str) -> Result<Vec<AppEvent>> {
        Ok(self
            .inner
            .index
            .read()?
            .app_events(repo)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// The repositories of applications with a history, sorted.
    pub fn app_repos(&self) -> Result<Vec<String>> {
        self.inner.index.read()?.app_repos()
    }

    /// The versions and current pointer of the application at `repo`.
    pub fn app_status(&self, repo: &str) -> Result<AppStatus> {
        let rtx = self.inner.index.read()?;
        let events = rtx.app_events(repo)?;
        let tags = rtx.tags(repo)?;
        let ordered = order_versions(&events, &tags);
        Ok(AppStatus {
            repo: repo.to_owned(),
            current: current_of(&events),
            versions: ordered,
        })
    }
}

/// The current version: the one the latest current-making event names.
pub(crate) fn current_of(events: &[(u64, AppEvent)]) -> Option<(String, Digest)> {
    events
        .iter()
        .rev()
        .find(|(_, e)| e.action.makes_current())
        .map(|(_, e)| (e.version.clone(), e.digest.clone()))
}

/// The versions (tags) newest arrival first: by the last add or import event of each, versions
/// without one (recorded before histories) last, by name.
pub(crate) fn order_versions(
    events: &[(u64, AppEvent)],
    tags: &[(String, Digest)],
) -> Vec<(String, Digest, Option<u64>)> {
    // (time, seq) of the last arrival, version, index.
    type Keyed = (Option<(u64, u64)>, String, Digest);
    let mut keyed: Vec<Keyed> = tags
        .iter()
        .map(|(tag, digest)| {
            let arrived = events
                .iter()
                .rev()
                .find(|(_, e)| e.action.arrives() && e.version == *tag)
                .map(|(seq, e)| (e.time, *seq));
            (arrived, tag.clone(), digest.clone())
        })
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    keyed
        .into_iter()
        .map(|(k, tag, d)| (tag, d, k.map(|(t, _)| t)))
        .collect()
}

/// Records an event of `action` for `repo:version` in `tx` (see
/// [`RepoChange::AppEvent`](crate::RepoChange::AppEvent)).
pub(crate) fn record_event(
    tx: &mut WriteTx<'_>,
    repo: &str,
    version: &str,
    action: AppAction,
    by: &str,
    now: u64,
) -> Result<()> {
    let Some(digest) = tx.tag(repo, version)? else {
        return Err(Error::AppVersionNotFound {
            repo: repo.to_owned(),
            version: version.to_owned(),
        });
    };
    let events = tx.app_events(repo)?;
    let current = current_of(&events);
    // Adding or importing again what is current changes nothing (a re-run of an import).
    if action.arrives() && current.as_ref() == Some(&(version.to_owned(), digest.clone())) {
        return Ok(());
    }
    let ev = AppEvent {
        time: now,
        action,
        version: version.to_owned(),
        digest,
        previous: current.map(|(v, _)| v),
        by: by.to_owned(),
    };
    tx.push_app_event(repo, &ev)
}
