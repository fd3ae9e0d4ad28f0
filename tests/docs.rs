//! The docs stay a manual: README's first screen fits on a screen, every relative link in the
//! Markdown files points at a file that exists, and no doc, script or source line cites this
//! project's own issue numbers (history lives in git; other projects' issues, written
//! `owner/repo#N` or "NNCF #2189", are fine).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`, skipping `skip`.
fn files(dir: &Path, exts: &[&str], skip: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if skip.contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            files(&path, exts, skip, out);
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

/// The project's own docs, scripts, configs and sources (not vendored files, not test data).
fn project_files() -> Vec<PathBuf> {
    let r = root();
    let mut out = vec![r.join("README.md"), r.join("BENCHMARKS.md")];
    let exts = [".md", ".rs", ".sh", ".py", ".toml", ".js", ".css"];
    let skip = ["data", "chart.umd.min.js", "target"];
    for dir in [
        "docs",
        "scripts",
        "experiments",
        "agents",
        "hardware-profiles",
        "src",
        "tests",
        "examples",
    ] {
        files(&r.join(dir), &exts, &skip, &mut out);
    }
    out
}

/// Where `line` says "issue" followed by a number ("issue 13", "Issue #7", "issues 2"), which
/// is how this project's own issues were cited.
fn cites_an_issue_number(line: &str) -> bool {
    let lower = line.to_lowercase();
    lower.match_indices("issue").any(|(i, _)| {
        let rest = lower[i + "issue".len()..].trim_start_matches('s');
        let rest = rest.trim_start().trim_start_matches('#');
        rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[test]
fn the_issue_number_check_tells_citations_apart() {
    assert!(cites_an_issue_number("before issue 13's speed work"));
    assert!(cites_an_issue_number("(Issue #7)"));
    assert!(cites_an_issue_number("issues 2 and 3"));
    assert!(!cites_an_issue_number("huggingface/candle#3578"));
    assert!(!cites_an_issue_number("the issue a user filed"));
    assert!(!cites_an_issue_number(
        "per-layer instruction issue and host sync"
    ));
}

#[test]
fn no_line_cites_this_projects_issue_numbers() {
    let mut found = Vec::new();
    for path in project_files() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if cites_an_issue_number(line) {
                let rel = path.strip_prefix(root()).unwrap_or(&path).display();
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    // This file's own examples above are the one allowed place.
    found.retain(|f| !f.starts_with("tests/docs.rs"));
    assert!(found.is_empty(), "issue numbers in:\n{}", found.join("\n"));
}

#[test]
fn readme_first_screen_fits_on_a_screen() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = text.lines().take_while(|l| !l.starts_with("## ")).count();
    assert!(
        first <= 40,
        "README has {first} lines before its first section; the first screen (what, the two \
         commands, what they write, one time figure) should fit in 40"
    );
    for command in ["cargo run --release -- search", "cargo test --release"] {
        assert!(text.contains(command), "README lost `{command}`");
    }
}

/// `](target)` links of a Markdown line that point inside the repository.
fn relative_links(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &line[i + 2..];
            let target = &rest[..rest.find(')')?];
            let path = target.split('#').next().unwrap_or("");
            let external = target.contains("://") || target.starts_with("mailto:");
            (!external && !path.is_empty()).then_some(path)
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_points_at_a_file() {
    let mut docs = Vec::new();
    for path in project_files() {
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    assert!(docs.len() >= 5, "found only {docs:?}");
    let mut broken = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            for target in relative_links(line) {
                if !doc.parent().unwrap().join(target).exists() {
                    let rel = doc.strip_prefix(root()).unwrap_or(&doc).display();
                    broken.push(format!("{rel}:{}: {target}", n + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
