//! The two sections of `airlock.toml` that hold lists instead of keys: `[groups]`, each entry a
//! group name and its members, and `[[access]]`, one table per access rule. Both are read from
//! the spanned TOML like every key, so an error names the line, the rule and the field.
//!
//! ```toml
//! [groups]
//! ops = ["alice", "bob"]
//!
//! [[access]]
//! repositories = ["apps/**"]
//! groups = ["ops"]
//! actions = ["pull", "push", "delete"]
//! ```
//!
//! This module checks what the file can say alone (field names and types, actions, that a
//! rule names someone, that its groups exist); the registry checks repository patterns when it
//! builds its policy.

use std::collections::BTreeMap;

use toml::{Spanned, de::DeValue};

use crate::{Config, Error, Origin, load::FileText, value::article};

/// The actions an access rule may grant.
pub const ACTIONS: &[&str] = &["pull", "push", "delete"];

/// The fields of an `[[access]]` table.
const RULE_FIELDS: &[&str] = &["repositories", "users", "groups", "actions"];

/// One `[[access]]` rule: who may do what to which repositories. Whoever matches `users` (names
/// from the htpasswd file, or `"*"` for every account) or `groups` may perform `actions` on every
/// repository matching one of the `repositories` patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessRule {
    /// Repository name patterns: `*` matches within one path segment, `**` across segments.
    pub repositories: Vec<String>,
    /// Account names, or `"*"` for every account.
    pub users: Vec<String>,
    /// Group names from `[groups]`.
    pub groups: Vec<String>,
    /// Some of `pull`, `push`, `delete`.
    pub actions: Vec<String>,
    /// Where the rule is written.
    pub origin: Origin,
}

impl AccessRule {
    /// A rule as the CLI or a test builds it, with no file origin.
    pub fn new(
        repositories: &[&str],
        users: &[&str],
        groups: &[&str],
        actions: &[&str],
    ) -> AccessRule {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        AccessRule {
            repositories: owned(repositories),
            users: owned(users),
            groups: owned(groups),
            actions: owned(actions),
            origin: Origin::Default,
        }
    }
}

/// Reads `[groups]` or `[[access]]` (`name`) into `config`.
pub(crate) fn read_list_section(
    config: &mut Config,
    name: &str,
    value: &Spanned<DeValue<'_>>,
    file: &FileText<'_>,
) -> Result<(), Error> {
    let invalid = |at: usize, what: String| Error::InvalidAccess {
        origin: file.origin(at),
        what,
    };
    match (name, value.get_ref()) {
        ("groups", DeValue::Table(table)) => {
            for (group, members) in table.iter() {
                let group_name: &str = group.get_ref();
                let list = strings(members, &format!("group `{group_name}`"), file)?;
                config
                    .groups
                    .insert(group_name.to_owned(), list.into_iter().collect());
            }
            Ok(())
        }
        ("access", DeValue::Array(rules)) => {
            for rule in rules.iter() {
                let number = config.access.len() + 1;
                config.access.push(read_rule(rule, number, file)?);
            }
            Ok(())
        }
        ("groups", other) => Err(invalid(
            value.span().start,
            format!(
                "`groups` must be a table ([groups]), found {}",
                article(other.type_str())
            ),
        )),
        (_, other) => Err(invalid(
            value.span().start,
            format!(
                "`access` must be an array of tables ([[access]]), found {}",
                article(other.type_str())
            ),
        )),
    }
}

fn read_rule(
    value: &Spanned<DeValue<'_>>,
    number: usize,
    file: &FileText<'_>,
) -> Result<AccessRule, Error> {
    let at = value.span().start;
    let DeValue::Table(table) = value.get_ref() else {
        return Err(Error::InvalidAccess {
            origin: file.origin(at),
            what: format!("access rule {number} must be a table ([[access]])"),
        });
    };
    let mut rule = AccessRule::new(&[], &[], &[], &[]);
    rule.origin = file.origin(at);
    for (field, v) in table.iter() {
        let field_name: &str = field.get_ref();
        let what = format!("`{field_name}` of access rule {number}");
        let list = match field_name {
            "repositories" => &mut rule.repositories,
            "users" => &mut rule.users,
            "groups" => &mut rule.groups,
            "actions" => &mut rule.actions,
            _ => {
                return Err(Error::InvalidAccess {
                    origin: file.origin(field.span().start),
                    what: format!(
                        "unknown field `{field_name}` in access rule {number}; allowed: {}",
                        RULE_FIELDS.join(", ")
                    ),
                });
            }
        };
        *list = strings(v, &what, file)?;
    }
    Ok(rule)
}

/// A TOML array of non-empty strings.
fn strings(
    value: &Spanned<DeValue<'_>>,
    what: &str,
    file: &FileText<'_>,
) -> Result<Vec<String>, Error> {
    let at = value.span().start;
    let invalid = |at: usize, why: String| Error::InvalidAccess {
        origin: file.origin(at),
        what: format!("{what}: {why}"),
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(invalid(
            at,
            format!(
                "expected an array of strings, found {}",
                article(value.get_ref().type_str())
            ),
        ));
    };
    items
        .iter()
        .map(|item| match item.get_ref() {
            DeValue::String(s) if !s.is_empty() => Ok(s.to_string()),
            DeValue::String(_) => Err(invalid(item.span().start, "an empty string".into())),
            other => Err(invalid(
                item.span().start,
                format!("expected a string, found {}", article(other.type_str())),
            )),
        })
        .collect()
}

/// Checks what spans rules and groups: every rule names repositories, someone and known
/// actions; every group a rule names exists.
pub(crate) fn validate(
    groups: &BTreeMap<String, Vec<String>>,
    rules: &[AccessRule],
) -> Result<(), Error> {
    for (i, rule) in rules.iter().enumerate() {
        let invalid = |what: String| Error::InvalidAccess {
            origin: rule.origin.clone(),
            what: format!("access rule {}: {what}", i + 1),
        };
        if rule.repositories.is_empty() {
            return Err(invalid("`repositories` lists no pattern".into()));
        }
        if rule.users.is_empty() && rule.groups.is_empty() {
            return Err(invalid("names no `users` and no `groups`".into()));
        }
        if rule.actions.is_empty() {
            return Err(invalid("`actions` lists no action".into()));
        }
        if let Some(bad) = rule.actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return Err(invalid(format!(
                "unknown action {bad:?}; allowed: {}",
                ACTIONS.join(", ")
            )));
        }
        if let Some(unknown) = rule.groups.iter().find(|g| !groups.contains_key(*g)) {
            return Err(invalid(format!(
                "group {unknown:?} is not defined in [groups]"
            )));
        }
    }
    Ok(())
}
