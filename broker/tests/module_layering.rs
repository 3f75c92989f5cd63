//! The broker's top-level modules form no import cycle: a module may use another only if that
//! one does not, directly or through others, use it back. Every `crate::module` path in
//! `src/` counts (imports and inline paths alike). The same holds inside the managed ledger,
//! between its sibling modules (`super::module` paths). A cycle fails with its modules listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `module -> modules it uses`, by top-level module of `src/`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name");
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A cycle through `from`, if any (depth-first, returns the path).
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == from {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, from, next, path, seen) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

/// `module -> sibling modules it uses` inside `dir` (one module per file; `mod.rs`, the
/// parent, is left out): `super::sibling` paths count.
fn sibling_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(dir, &mut files);
    let stem = |p: &Path| {
        p.strip_prefix(dir)
            .expect("under dir")
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name")
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| stem(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = stem(file);
        if module == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("super::") {
            let name: String = text[at + "super::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != module && name != "mod" {
                uses.insert(name);
            }
        }
    }
    graph
}

fn cycles_of(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    graph
        .keys()
        .filter_map(|module| {
            let mut path = vec![module.clone()];
            cycle_from(graph, module, module, &mut path, &mut BTreeSet::new())
        })
        .map(|c| c.join(" -> "))
        .collect()
}

#[test]
fn managed_ledger_modules_have_no_import_cycle() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    let graph = sibling_graph(&Path::new(&root).join("src/managed_ledger"));
    assert!(graph.len() > 8, "found the modules: {graph:?}");
    let cycles = cycles_of(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles inside the managed ledger: {}",
        cycles.join("; ")
    );
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    let graph = graph(&Path::new(&root).join("src"));
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    let cycles: Vec<Vec<String>> = graph
        .keys()
        .filter_map(|module| {
            let mut path = vec![module.clone()];
            cycle_from(&graph, module, module, &mut path, &mut BTreeSet::new())
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between the broker's modules: {}",
        cycles
            .iter()
            .map(|c| c.join(" -> "))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
