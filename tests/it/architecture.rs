//! The library's shape, held by tests: modules import only modules below them (the order of
//! [`MODULES`], which ARCHITECTURE.md draws), every module is in that order and in
//! ARCHITECTURE.md's code map, and every module opens with a comment that says what it owns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The library's modules, lowest first. A module may name (in a `use` or a path) only modules
/// before it here; `lib` is the facade. A directory's facade (`read` is `read/mod.rs`) comes
/// after its files: its files name each other directly, never through it.
const MODULES: &[&str] = &[
    // The ground: every stage uses these.
    "digest",
    "error",
    "progress",
    "budget",
    "context",
    "units",
    "page_cache",
    // Compression in one place.
    "codec::compression",
    "codec::decode",
    "codec::pgzip",
    "codec::encode",
    "codec",
    // The layer vocabulary.
    "layer::entry",
    "layer::tarstream",
    "layer::header",
    "layer::layer_index",
    "layer",
    // Registries: references, options, the client, a repository as a store.
    "registry::transfer",
    "registry::options",
    "registry::reference",
    "registry::auth",
    "registry::client",
    "registry::repository",
    "registry",
    // Reading.
    "read::media",
    "read::archive",
    "read::blob",
    "read::platform",
    "read::descriptor",
    "read::image",
    "read::spool",
    "read::reference",
    "read::oci",
    "read::docker",
    "read::image_index",
    "read::layout",
    "read::remote",
    "read::open",
    "read::stream",
    "read::indexing",
    "read::once",
    "read::reread",
    "read",
    // Planning.
    "plan::range",
    "plan::exclude",
    "plan::edits",
    "plan::options",
    "plan::changeset::range_plan",
    "plan::changeset::delta",
    "plan::changeset::lower",
    "plan::changeset::exclude",
    "plan::changeset::tree",
    "plan::changeset::emit",
    "plan::changeset",
    "plan::squash_plan",
    "plan::planner",
    "plan::image_index",
    "plan",
    // Merging.
    "merge::range_tar",
    "merge::new_layer",
    "merge",
    // Writing.
    "write::output",
    "write::lock",
    "write::container",
    "write::space",
    "write::layout",
    "write::archive",
    "write::stream",
    "write::registry",
    "write::staged",
    "write::target",
    "write::outcome",
    "write::documents",
    "write::beside",
    "write::execute",
    "write::image_index",
    "write",
    // Built on the stages.
    "report::clutter",
    "report::model",
    "report::gates",
    "report::audit",
    "report::sample",
    "report::measure",
    "report::story",
    "report::compute",
    "report",
    "diff",
    "config_diff",
    // Presentation.
    "present::story",
    "present::svg",
    "present::document",
    "present::pages",
    "present",
    "lib",
];

/// Imports that break the order on purpose, as (module, module it names). None: every module
/// fits the order. An exception added here is explained in ARCHITECTURE.md.
const EXCEPTIONS: &[(&str, &str)] = &[];

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/squash/src")
        .canonicalize()
        .expect("the library's source")
}

/// The module a file of the library is, as `read::image` (`lib` for lib.rs).
fn module_of(relative: &Path) -> String {
    let text = relative.with_extension("").to_string_lossy().replace('/', "::");
    match text.strip_suffix("::mod") {
        Some(facade) => facade.to_string(),
        None => text,
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module of the library with its file, in file-name order.
fn modules() -> Vec<(String, PathBuf)> {
    let root = source();
    let mut paths = Vec::new();
    files(&root, &mut paths);
    paths.sort();
    paths.into_iter().map(|p| (module_of(p.strip_prefix(&root).expect("under src")), p)).collect()
}

/// The code with comments and string literals blanked, so that neither is read as a path.
fn code(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A character literal (`'"'`), not a lifetime (`'a`).
            b'\'' if bytes.get(i + 2) == Some(&b'\'') || bytes.get(i + 1) == Some(&b'\\') => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            b'r' if bytes.get(i + 1) == Some(&b'#')
                || (bytes.get(i + 1) == Some(&b'"') && !ident_byte(bytes, i)) =>
            {
                // A raw string: r"…" or r#"…"#.
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                let close: Vec<u8> =
                    std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                i += 2 + hashes;
                while i < bytes.len() && !bytes[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    out
}

/// Whether the byte before `i` continues an identifier (so `br"` or `for"` is no raw string).
fn ident_byte(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
}

/// The tokens of code (identifiers, `::`, single punctuation), each with its line.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            if c == '\n' {
                line += 1;
            } else if !c.is_whitespace() {
                out.push((c.to_string(), line));
            }
            i += 1;
        }
    }
    out
}

/// Every path a file names through `crate`, `super` or `self`, as segments from the crate root
/// (the test module's `super` is the file itself), with the line it is on.
fn named_paths(module: &str, text: &str) -> Vec<(Vec<String>, usize)> {
    let base: Vec<String> =
        if module == "lib" { Vec::new() } else { module.split("::").map(str::to_string).collect() };
    let cleaned = code(text);
    let tests_start = cleaned.find("mod tests {").map(|at| cleaned[..at].lines().count() + 1);
    let with_lines = tokens(&cleaned);
    let tokens: Vec<String> = with_lines.iter().map(|(t, _)| t.clone()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let root = tokens[i].as_str();
        let line = with_lines[i].1;
        let preceded_by_path = i > 0 && tokens[i - 1] == "::";
        if matches!(root, "crate" | "super" | "self")
            && !preceded_by_path
            && tokens.get(i + 1).is_some_and(|t| t == "::")
        {
            let in_tests = tests_start.is_some_and(|start| line >= start);
            let mut start: Vec<String> = match root {
                "crate" => Vec::new(),
                // A file's `super` is its parent module; from its test module, the file.
                "super" if in_tests => base.clone(),
                "super" => parent(&base),
                _ => base.clone(),
            };
            let mut j = i + 2;
            // `super::super::…`
            while tokens.get(j).is_some_and(|t| t == "super")
                && tokens.get(j + 1).is_some_and(|t| t == "::")
            {
                start = parent(&start);
                j += 2;
            }
            let (paths, end) = use_tree(&tokens, j, start);
            out.extend(paths.into_iter().map(|p| (p, line)));
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// The module above `path` (the crate root above a top-level module).
fn parent(path: &[String]) -> Vec<String> {
    path[..path.len().saturating_sub(1)].to_vec()
}

/// The paths of a use tree (or a plain path) starting at token `at`, under `prefix`; and the
/// token after it.
fn use_tree(tokens: &[String], mut at: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut path = prefix;
    loop {
        match tokens.get(at).map(String::as_str) {
            Some("{") => {
                let mut paths = Vec::new();
                at += 1;
                loop {
                    match tokens.get(at).map(String::as_str) {
                        Some("}") => {
                            return (if paths.is_empty() { vec![path] } else { paths }, at + 1)
                        }
                        Some(",") => at += 1,
                        None => return (paths, at),
                        _ => {
                            let (inner, next) = use_tree(tokens, at, path.clone());
                            paths.extend(inner);
                            // Skip `as NAME`.
                            at = if tokens.get(next).is_some_and(|t| t == "as") {
                                next + 2
                            } else {
                                next
                            };
                        }
                    }
                }
            }
            Some("*") | Some("self") => return (vec![path], at + 1),
            Some(segment) if segment.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                path.push(segment.to_string());
                at += 1;
                if tokens.get(at).is_some_and(|t| t == "::") {
                    at += 1;
                } else {
                    return (vec![path], at);
                }
            }
            _ => return (vec![path], at),
        }
    }
}

/// The module a path from the crate root names: its longest prefix that is a module.
fn resolve(path: &[String], known: &BTreeSet<String>) -> String {
    for len in (1..=path.len()).rev() {
        let candidate = path[..len].join("::");
        if known.contains(&candidate) {
            return candidate;
        }
    }
    "lib".to_string()
}

/// Every module imports only modules below it in [`MODULES`]: no stage reaches up (`read`
/// naming `plan`, `merge`, `write` or `report`), and no file of a directory goes through its
/// directory's facade.
#[test]
fn modules_import_only_modules_below_them() {
    let rank = |m: &str| MODULES.iter().position(|x| *x == m);
    let known: BTreeSet<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let mut violations = Vec::new();
    let mut checked = 0;
    for (module, path) in modules() {
        let Some(own) = rank(&module) else { continue };
        let text = std::fs::read_to_string(&path).expect("read a module");
        for (named, line) in named_paths(&module, &text) {
            let target = resolve(&named, &known);
            checked += 1;
            if target == module || EXCEPTIONS.contains(&(module.as_str(), target.as_str())) {
                continue;
            }
            let facade_child = module != "lib" && target.starts_with(&format!("{module}::"));
            let below = rank(&target).is_some_and(|r| r < own);
            if !below && !facade_child {
                violations.push(format!(
                    "{}:{line}: `{module}` names `{}` (module `{target}`), which is not below it",
                    path.display(),
                    named.join("::")
                ));
            }
        }
    }
    assert!(checked > 300, "only {checked} paths found: the parser reads nothing");
    assert!(violations.is_empty(), "imports that reach up:\n{}", violations.join("\n"));
}

/// The changeset decisions are pure: nothing under `plan/changeset/` names a module that reads
/// (only `read::reread`, for the `Reread` records a plan carries) or touches files, processes or
/// the network.
#[test]
fn changeset_reads_nothing() {
    let known: BTreeSet<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let mut checked = 0;
    for (module, path) in modules().into_iter().filter(|(m, _)| m.starts_with("plan::changeset")) {
        let text = std::fs::read_to_string(&path).expect("read a module");
        for forbidden in ["std::fs", "std::io", "std::net", "std::process", "tempfile"] {
            assert!(
                !code(&text).contains(forbidden),
                "`{module}` uses `{forbidden}`: the changeset decides, it does not read"
            );
        }
        for (named, line) in named_paths(&module, &text) {
            let target = resolve(&named, &known);
            checked += 1;
            assert!(
                !target.starts_with("read") || target == "read::reread",
                "{}:{line}: `{module}` names `{target}`, which reads: ask `plan/planner.rs` to \
                    read instead",
                path.display()
            );
        }
    }
    assert!(checked > 20, "only {checked} paths found in plan/changeset");
}

/// The order names every module there is, and only those; ARCHITECTURE.md's code map names
/// every file.
#[test]
fn every_module_is_in_the_order_and_the_code_map() {
    let found: Vec<String> = modules().into_iter().map(|(m, _)| m).collect();
    let listed: BTreeSet<&str> = MODULES.iter().copied().collect();
    let missing: Vec<&String> = found.iter().filter(|m| !listed.contains(m.as_str())).collect();
    assert!(
        missing.is_empty(),
        "modules missing from MODULES (place each where it belongs): {missing:?}"
    );
    let gone: Vec<&&str> = MODULES.iter().filter(|m| !found.iter().any(|f| f == *m)).collect();
    assert!(gone.is_empty(), "MODULES lists modules that do not exist: {gone:?}");
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let root = source();
    let mut paths = Vec::new();
    files(&root, &mut paths);
    let unmapped: Vec<String> = paths
        .iter()
        .map(|p| p.strip_prefix(&root).expect("under src").to_string_lossy().into_owned())
        .filter(|p| !map.contains(p.as_str()))
        .collect();
    assert!(unmapped.is_empty(), "files ARCHITECTURE.md's code map does not name: {unmapped:?}");
}

/// Every file of the library opens with a `//!` comment that says what it owns, and none cites
/// a file outside the repository.
#[test]
fn every_module_says_what_it_owns() {
    for (module, path) in modules() {
        let text = std::fs::read_to_string(&path).expect("read a module");
        assert!(
            text.starts_with("//!"),
            "`{module}` ({}) does not open with a `//!` comment",
            path.display()
        );
        assert!(
            !text.contains("SPEC-NOTES"),
            "`{module}` cites SPEC-NOTES, which is outside the \
            repository: cite docs/layer-rules.md"
        );
    }
}

/// The parser finds what a module names: use trees, nested groups, `super` and inline paths.
#[test]
fn the_parser_reads_use_trees_and_paths() {
    let text = "use crate::{a::b, c::{d, e as f}};\nuse super::g::H;\nfn x() { crate::i::j(); let \
        s = \"crate::k::l\"; }\n// crate::m\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n";
    let named: Vec<String> =
        named_paths("p::q", text).into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(named, ["a::b", "c::d", "c::e", "p::g::H", "i::j", "p::q"]);
}
