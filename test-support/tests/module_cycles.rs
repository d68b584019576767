//! The crates point one way inside too: no source file of a workspace crate imports
//! (`use crate::…` or `use super::…`) a file that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src`: `session/mod.rs` → `["session"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

/// The file holding the longest existing prefix of `module` (the crate root for none).
fn file_of(src: &Path, module: &[String]) -> Option<PathBuf> {
    for len in (1..=module.len()).rev() {
        let base: PathBuf = module[..len].iter().collect();
        for candidate in [
            src.join(&base).with_extension("rs"),
            src.join(&base).join("mod.rs"),
        ] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The files `file` imports from its own crate (test modules excluded).
fn imports(src: &Path, file: &Path) -> BTreeSet<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let me = module_of(src, file);
    let mut found = BTreeSet::new();
    for statement in text.split(';') {
        let Some(start) = statement.find("use ") else {
            continue;
        };
        let path = statement[start + 4..].trim();
        let head: Vec<&str> = path
            .split(|c: char| c == '{' || c.is_whitespace())
            .next()
            .unwrap_or_default()
            .split("::")
            .filter(|s| !s.is_empty())
            .collect();
        let mut module: Vec<String> = match head.first() {
            Some(&"crate") => Vec::new(),
            Some(&"super") => {
                // `super` of `a/b.rs` (module `a::b`) is `a`; of `a/mod.rs` (module `a`),
                // the crate root.
                let mut base = me.clone();
                let ups = head.iter().take_while(|s| **s == "super").count();
                for _ in 0..ups {
                    base.pop();
                }
                base.extend(head[ups..].iter().map(|s| s.to_string()));
                if let Some(target) = file_of(src, &base) {
                    found.insert(target);
                }
                continue;
            }
            _ => continue,
        };
        module.extend(head[1..].iter().map(|s| s.to_string()));
        // `use crate::a::{b, c}`: each braced item may be a module of its own.
        let mut targets = vec![module.clone()];
        if let Some(open) = path.find('{') {
            for item in path[open + 1..].trim_end_matches('}').split(',') {
                let item = item.trim().split("::").next().unwrap_or_default();
                if !item.is_empty() && item != "self" {
                    let mut m = module.clone();
                    m.push(item.trim().to_owned());
                    targets.push(m);
                }
            }
        }
        for target in targets {
            if let Some(target) = file_of(src, &target)
                && target != file
            {
                found.insert(target);
            }
        }
    }
    found
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cycles = Vec::new();
    let mut crates = 0;
    for entry in std::fs::read_dir(workspace).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() || !src.parent().unwrap().join("Cargo.toml").is_file() {
            continue;
        }
        crates += 1;
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = files
            .iter()
            .map(|f| (f.clone(), imports(&src, f)))
            .collect();
        for (file, targets) in &graph {
            for target in targets {
                if file < target && graph.get(target).is_some_and(|back| back.contains(file)) {
                    cycles.push(format!(
                        "{} <-> {}",
                        file.strip_prefix(workspace).unwrap().display(),
                        target.strip_prefix(workspace).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        crates >= 10,
        "found only {crates} crates: is this the workspace?"
    );
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}
