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
