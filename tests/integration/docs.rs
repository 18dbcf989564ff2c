//! The documentation cannot drift from the code: every config snippet of README.md and docs/ is a config the
//! sidecar accepts (or, where the text says so just before it, one it refuses), every flag the docs name exists,
//! and every `kubectl apply -k` line names a kustomization whose files exist.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/.
fn pages() -> Vec<(PathBuf, String)> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
        .into_iter()
        .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// The fenced blocks of a page with the given info string, each with the line just before its fence.
fn blocks<'a>(text: &'a str, info: &str) -> Vec<(&'a str, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at].trim() == format!("```{info}") {
            let before = lines[..at]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or("");
            let end = (at + 1..lines.len()).find(|&i| lines[i].trim() == "```").unwrap();
            found.push((before, lines[at + 1..end].join("\n") + "\n"));
            at = end;
        }
        at += 1;
    }
    found
}

/// A snippet as a whole config: a section that lives inside a target (`auth:`) is put in one.
fn as_config(yaml: &str) -> Option<String> {
    let parsed: Value = yaml_serde::from_str(yaml).ok()?;
    let first = parsed.as_object()?.keys().next()?.clone();
    match first.as_str() {
        "targets" | "inbound" | "policy" | "profiles" => Some(yaml.to_owned()),
        "auth" => {
            let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
            Some(format!(
                "targets:\n  - name: t\n    url: http://127.0.0.1:1/mcp\n{indented}"
            ))
        }
        _ => None,
    }
}

/// The problems `mcplex check` would report, less those about files that do not exist on this machine (the
/// snippets name files mounted in a pod).
fn problems(config: &str, page: &Path) -> Vec<String> {
    match mcplex::config::parse(config, page) {
        Ok(_) => Vec::new(),
        Err(mcplex::config::ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .filter(|p| !p.message.contains("(os error 2)"))
            .map(ToString::to_string)
            .collect(),
        Err(other) => vec![other.to_string()],
    }
}

/// The marker before a snippet that must be refused.
const INVALID: &str = "<!-- an invalid config -->";

#[test]
fn every_config_snippet_is_one_the_sidecar_accepts_unless_marked_invalid() {
    let (mut checked, mut marked_invalid) = (0, 0);
    for (page, text) in pages() {
        for (before, yaml) in blocks(&text, "yaml") {
            let Some(config) = as_config(&yaml) else { continue };
            let problems = problems(&config, &page);
            if before.trim() == INVALID {
                marked_invalid += 1;
                assert!(
                    !problems.is_empty(),
                    "{}: a snippet marked invalid is accepted:\n{yaml}",
                    page.display()
                );
            } else {
                assert!(problems.is_empty(), "{}: {problems:?}\n{yaml}", page.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} config snippets found");
    assert!(marked_invalid >= 1, "no snippet marked invalid was checked");
}

#[test]
fn a_broken_snippet_is_caught() {
    let broken = "targets:\n  - name: Bad Name\n    url: nope\n";
    assert!(!problems(broken, Path::new("t.md")).is_empty());
    let missing_file = "targets:\n  - name: a\n    url: https://a.svc/mcp\n    tls: { ca: /nowhere/ca.crt }\n";
    assert!(problems(missing_file, Path::new("t.md")).is_empty());
}

/// Every `--flag` a page names for one of mcplex's binaries: in a code span that starts with the flag, or on a
/// line of code that runs `mcplex`, `mcplex-webhook` or `mcplex-examples`.
fn documented_flags() -> Vec<(String, String)> {
    let mut flags = Vec::new();
    let mut add = |page: &Path, text: &str| {
        for word in text.split(|c: char| c.is_whitespace() || matches!(c, '`' | '[' | ']' | '(' | ')' | ',' | '=')) {
            if let Some(name) = word.strip_prefix("--")
                && name.starts_with(|c: char| c.is_ascii_lowercase())
            {
                let name = name.trim_end_matches(['.', ':', ';']);
                flags.push((page.display().to_string(), format!("--{name}")));
            }
        }
    };
    for (page, text) in pages() {
        for (index, span) in text.split('`').enumerate() {
            // Odd pieces are inside backticks.
            if index % 2 == 1 && (span.starts_with("--") || span.starts_with("mcplex ") || span.starts_with("mcplex-"))
            {
                add(&page, span);
            }
        }
        for (_, code) in blocks(&text, "sh") {
            for line in code.lines().filter(|l| l.trim_start().starts_with("mcplex")) {
                add(&page, line);
            }
        }
    }
    flags
}

/// What the binaries accept: the sidecar's `--help` for every subcommand, and the argument fields of the
/// webhook's and the example servers' command lines.
fn accepted_flags() -> String {
    let sidecar = env!("CARGO_BIN_EXE_mcplex");
    let mut help = String::new();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["pins", "--help"],
        &["serve", "--help"],
        &["install", "--help"],
    ] {
        let out = Command::new(sidecar).args(args).output().unwrap();
        assert!(out.status.success(), "mcplex {args:?}");
        help.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    for source in ["webhook/src/main.rs", "example-servers/src/main.rs"] {
        let text = std::fs::read_to_string(root().join(source)).unwrap();
        for line in text.lines() {
            let line = line.trim();
            if let Some(field) = line.strip_prefix("pub ").unwrap_or(line).split(':').next()
                && !field.is_empty()
                && field.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                help.push_str(&format!(" --{} ", field.replace('_', "-")));
            }
        }
    }
    help
}

#[test]
fn every_flag_the_docs_name_exists() {
    let flags = documented_flags();
    assert!(
        flags.iter().any(|(_, f)| f == "--max-sessions"),
        "the reader found no flags: {flags:?}"
    );
    let accepted = accepted_flags();
    let unknown: Vec<&(String, String)> = flags
        .iter()
        .filter(|(_, flag)| !accepted.contains(&format!("{flag} ")) && !accepted.contains(&format!("{flag}\n")))
        .collect();
    assert!(
        unknown.is_empty(),
        "flags named in the docs that no binary accepts: {unknown:?}"
    );
}

#[test]
fn every_kubectl_apply_names_a_kustomization_whose_files_exist() {
    let mut checked = 0;
    for (page, text) in pages() {
        for (_, code) in blocks(&text, "sh") {
            for line in code.lines() {
                let Some(rest) = line.trim().strip_prefix("kubectl apply -k ") else {
                    continue;
                };
                let dir = root().join(rest.split_whitespace().next().unwrap());
                let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml"))
                    .unwrap_or_else(|e| panic!("{}: {line}: {e}", page.display()));
                let kustomization: Value = yaml_serde::from_str(&kustomization).unwrap();
                for resource in kustomization["resources"].as_array().unwrap() {
                    let file = dir.join(resource.as_str().unwrap());
                    assert!(
                        file.exists(),
                        "{}: {line}: {} is missing",
                        page.display(),
                        file.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "only {checked} kubectl apply -k lines found");
}
