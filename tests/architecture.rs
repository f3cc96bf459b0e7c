//! The layers stay layers: each module's imports are read from the source,
//! and the test fails on an import a layer may not make or on a circle
//! between modules. ARCHITECTURE.md says why the rules are what they are.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Which top-level modules each layer may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &["domain"]),
    ("store", &["store", "domain"]),
    ("app", &["app", "store", "domain"]),
    ("api", &["api", "app", "domain"]),
    // The dashboard: HTML over the same use cases as the API.
    ("ui", &["ui", "app", "domain"]),
    ("cli", &["cli", "api", "app", "store", "domain", "lib"]),
    ("lib", &["api", "app", "cli", "domain", "store", "ui"]),
];

/// A module: its path below the crate, such as `store::runs`.
type Module = String;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            // The benchmark is a binary of its own, not part of the library.
            if !path.ends_with("bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/store/runs.rs` → `store::runs`; `src/store/mod.rs` → `store`;
/// `src/lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

/// Expands a `use` tree (`crate::{a::{b, c}, d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').expect("closing brace")];
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(join(prefix, &inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(join(prefix, &inner[start..]));
    out
}

fn join(prefix: &str, part: &str) -> Vec<String> {
    if part.trim().is_empty() {
        return Vec::new();
    }
    expand(part)
        .into_iter()
        .map(|p| {
            if p == "self" {
                prefix.to_owned()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// Every `crate::…` and `super::…` path a file names, in `use` items and
/// inline, resolved to the module it points into (at most two segments
/// deep: `store::runs`, `app`).
fn imports(
    module: &str,
    is_mod_file: bool,
    text: &str,
    known: &BTreeSet<Module>,
) -> BTreeSet<Module> {
    // Unit tests may reach anywhere; they are not part of the module's
    // dependencies. By convention they sit at the end of the file.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    // Comments and doc comments name modules too, without importing them.
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let item = ["use ", "pub use ", "pub(crate) use "]
            .iter()
            .find_map(|kw| trimmed.strip_prefix(kw));
        if let Some(item) = item {
            let start = offset + (line.len() - item.len());
            let end = code[start..].find(';').map_or(code.len(), |e| start + e);
            paths.extend(expand(&code[start..end]));
        }
        offset += line.len();
    }
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("crate::") || word.starts_with("super::") {
            paths.push(word.to_owned());
        }
    }
    // `super` from `a/b.rs` is `a`; from `a/mod.rs` it is the crate root.
    let parent = {
        let mut parts: Vec<&str> = module.split("::").collect();
        if !is_mod_file {
            parts.pop();
        }
        parts.join("::")
    };
    // A path through an imported module (`app::runs::create` after
    // `use crate::{app::{self, App}}`) names that module's child.
    let resolve = |path: &str| -> Option<String> {
        if let Some(rest) = path.strip_prefix("crate::") {
            return Some(rest.to_owned());
        }
        path.strip_prefix("super::").map(|rest| {
            if parent.is_empty() {
                rest.to_owned()
            } else {
                format!("{parent}::{rest}")
            }
        })
    };
    let aliases: BTreeMap<String, String> = paths
        .iter()
        .filter_map(|p| resolve(p))
        .filter(|m| known.contains(m))
        .map(|m| (m.rsplit("::").next().unwrap_or(&m).to_owned(), m))
        .collect();
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if let Some((head, rest)) = word.split_once("::")
            && let Some(module) = aliases.get(head)
        {
            paths.push(format!("crate::{module}::{rest}"));
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let Some(resolved) = resolve(&path) else {
            continue;
        };
        let segments: Vec<&str> = resolved.split("::").collect();
        // The deepest known module the path goes through.
        let target = (1..=segments.len().min(2))
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| known.contains(m));
        if let Some(target) = target
            && target != module
        {
            out.insert(target);
        }
    }
    out
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<(Module, PathBuf)> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    let known: BTreeSet<Module> = modules.iter().map(|(m, _)| m.clone()).collect();
    modules
        .iter()
        .map(|(m, f)| {
            let text = fs::read_to_string(f).expect("read source");
            let is_mod = f.ends_with("mod.rs") || f.ends_with("lib.rs");
            (m.clone(), imports(m, is_mod, &text, &known))
        })
        .collect()
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn layers_import_only_what_they_may() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        if module == "main" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(l, _)| *l == layer(&module))
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{module} is in no layer; add it to ALLOWED"));
        for dep in deps {
            if !allowed.contains(&layer(&dep)) {
                wrong.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports across layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = graph();
    // A module's parent (`store` for `store::runs`) declares it and re-exports
    // from it; that edge is structure, not a dependency.
    let edges = |m: &str| -> Vec<String> {
        graph
            .get(m)
            .into_iter()
            .flatten()
            .filter(|d| !m.starts_with(&format!("{d}::")) && !d.starts_with(&format!("{m}::")))
            .cloned()
            .collect()
    };
    let mut circles = Vec::new();
    for start in graph.keys() {
        // Depth-first from `start`, looking for a path back to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges(&at) {
                if &next == start {
                    let mut circle = path.clone();
                    circle.push(next.clone());
                    circles.push(circle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next, longer));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_sees_every_module() {
    // A guard on the test itself: if parsing found nothing, the two tests
    // above would pass for the wrong reason.
    let graph = graph();
    assert!(
        graph
            .get("api::runs")
            .is_some_and(|d| d.contains("app::runs"))
    );
    assert!(
        graph
            .get("app::runs")
            .is_some_and(|d| d.contains("store::runs"))
    );
    assert!(
        graph
            .get("store::runs")
            .is_some_and(|d| d.contains("domain::run"))
    );
}
