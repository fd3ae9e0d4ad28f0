//! docs/architecture.md's module table matches the code: each library module uses exactly the
//! modules its row lists (read from `crate::` paths outside comments and test-only modules), and no
//! module reaches, through those edges, back to itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `| `module` | owns | uses |` rows of the table; `—` means none.
fn documented() -> Graph {
    let text = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut g = Graph::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].split('`').nth(1).unwrap_or(cells[1]);
        let uses = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty() && *u != "—" && *u != "everything")
            .map(String::from)
            .collect();
        g.insert(name.to_string(), uses);
    }
    g
}

/// The submodules a folder's mod.rs declares under `#[cfg(test)]` (test helpers, not library).
fn test_only_modules(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("mod.rs")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "#[cfg(test)]")
        .filter_map(|w| w[1].strip_prefix("mod ")?.strip_suffix(';'))
        .map(String::from)
        .collect()
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let skip = test_only_modules(path);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if skip.contains(&stem) {
            continue;
        }
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// `text` without its `#[cfg(test)]` items: a `mod x;` declaration up to its `;`, a block item
/// (`mod tests { .. }`, a test macro) up to its matching brace.
fn without_test_items(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let item = &rest[i + "#[cfg(test)]".len()..];
        let semi = item.find(';').unwrap_or(item.len());
        let open = item.find('{').unwrap_or(item.len());
        let end = if semi < open {
            semi + 1
        } else {
            let mut depth = 0usize;
            let mut end = item.len();
            for (j, c) in item.char_indices().skip(open) {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The `crate::X` names a file's library code mentions (comments and `#[cfg(test)]` items are
/// left out).
fn crate_refs(text: &str, into: &mut BTreeSet<String>) {
    let code = without_test_items(text);
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name = item.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        into.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                into.insert(name);
            }
        }
    }
}

/// The library's modules (files and folders under src/ but main, lib and the binary's cli) and
/// what each uses.
fn actual() -> Graph {
    let mut g = Graph::new();
    for entry in std::fs::read_dir(root().join("src")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if ["main", "lib", "cli"].contains(&name.as_str()) {
            continue;
        }
        let mut uses = BTreeSet::new();
        for f in rust_files(&p) {
            crate_refs(&std::fs::read_to_string(&f).unwrap(), &mut uses);
        }
        uses.remove(&name);
        g.insert(name, uses);
    }
    g
}

#[test]
fn the_documented_module_graph_is_the_code_s() {
    let mut doc = documented();
    assert!(
        doc.remove("cli").is_some(),
        "the table lists the binary's cli"
    );
    assert_eq!(doc, actual(), "docs/architecture.md (left) vs src/ (right)");
}

#[test]
fn no_module_reaches_itself() {
    let g = actual();
    for start in g.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = g[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert_ne!(m, start, "a cycle through {start}");
            if seen.insert(m.clone()) {
                todo.extend(g.get(m).into_iter().flatten());
            }
        }
    }
}
