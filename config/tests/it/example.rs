use std::path::Path;

use airlock_config::{Config, Key};

const EXAMPLE: &str = include_str!("../../airlock.example.toml");

/// The example with every `# key = value` line of a known key uncommented.
fn uncommented() -> String {
    let mut section = String::new();
    let mut out = String::new();
    for line in EXAMPLE.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        }
        let setting = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(" = "))
            .filter(|(field, _)| Key::from_name(&format!("{section}.{field}")).is_some());
        match setting {
            Some(_) => out.push_str(&line[2..]),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn example_parses_as_is_to_the_defaults() {
    let config = Config::parse(EXAMPLE, Path::new("airlock.example.toml")).unwrap();
    for key in Key::ALL {
        assert!(!config.is_explicit(key), "{key} is set in the example");
    }
}

#[test]
fn example_values_are_the_defaults() {
    let text = uncommented();
    let config = Config::parse(&text, Path::new("airlock.example.toml")).unwrap();
    let defaults = Config::default();
    for key in Key::ALL {
        assert!(config.is_explicit(key), "{key} missing from the example");
        assert_eq!(
            config.value(key),
            defaults.value(key),
            "the example's {key} is not the default"
        );
    }
}

#[test]
fn every_key_appears_once_in_its_section_with_its_env_var() {
    for key in Key::ALL {
        let (section, field) = key.path();
        let header = format!("[{section}]");
        let start = EXAMPLE
            .find(&header)
            .unwrap_or_else(|| panic!("no {header}"));
        let body = &EXAMPLE[start + header.len()..];
        let body = &body[..body.find("\n[").unwrap_or(body.len())];
        let line = format!("\n# {field} = ");
        assert_eq!(body.matches(&line).count(), 1, "{key} in {header}");
        let env_line = format!("\n# env {}\n# {field} = ", key.env_var());
        assert!(
            body.contains(&env_line),
            "{key}: no `# env {}` above it",
            key.env_var()
        );
    }
}

/// The example's commented access rules (from `# [groups]` to the end) parse as written.
#[test]
fn issue_16_example_access_rules_parse() {
    let start = EXAMPLE.find("\n# [groups]\n").expect("an access example");
    let rules: String = EXAMPLE[start + 1..]
        .lines()
        .map(|line| {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let config = Config::parse(&rules, Path::new("airlock.example.toml")).unwrap();
    assert_eq!(config.groups["ops"], ["alice", "bob"]);
    assert_eq!(config.access.len(), 2);
    assert_eq!(config.access[1].repositories, ["apps/*", "docker.io/**"]);
}

/// The `airlock.toml` of README.md's "Serving a site" section is a valid configuration and
/// says what the text around it says.
#[test]
fn issue_16_readme_serving_example_is_a_valid_config() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .find("## Serving a site")
        .expect("README has a section on serving a site");
    let body = &readme[section..];
    let start = body.find("```toml\n").expect("with an airlock.toml") + "```toml\n".len();
    let text = &body[start..start + body[start..].find("```").unwrap()];
    let config = Config::parse(text, Path::new("/etc/airlock/airlock.toml")).unwrap();
    config.validate().unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:5000");
    assert_eq!(
        config.tls.cert.as_deref(),
        Some(Path::new("/etc/airlock/registry.crt"))
    );
    assert_eq!(
        config.auth.htpasswd.as_deref(),
        Some(Path::new("/etc/airlock/htpasswd"))
    );
    assert!(config.auth.anonymous_pull);
    assert_eq!(config.limits.max_blob_size.as_u64(), 16 << 30);
    assert_eq!(config.limits.max_upload_sessions_per_client, 8);
    assert_eq!(config.groups["ops"], ["alice", "bob"]);
    assert_eq!(config.access.len(), 2);
    assert_eq!(config.access[1].repositories, ["ci/**"]);
    assert_eq!(config.access[1].users, ["ci"]);
}

/// The example's commented `[trust]` section parses as written (issue 17).
#[test]
fn issue_17_example_trust_section_parses() {
    let start = EXAMPLE.find("\n# [trust]\n").expect("a [trust] example");
    let text: String = EXAMPLE[start + 1..]
        .lines()
        .take(2)
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
        .collect();
    let config = Config::parse(&text, Path::new("/etc/airlock/airlock.toml")).unwrap();
    assert_eq!(config.trust.keys.len(), 2);
    assert_eq!(
        config.trust.keys[0].source,
        airlock_config::KeySource::File("/etc/airlock/vendor.pub".into())
    );
}
