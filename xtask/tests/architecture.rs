//! The dependency rules of `ARCHITECTURE.md`, checked against the code: no file of a crate
//! imports another in a circle, and no module imports one of a layer above its own.
//!
//! A file imports another when it names a path into it: in a `use` (braces expanded) or in
//! code (`crate::…`, `super::…`, `self::…`, or a child module's name). A module may use
//! its ancestors' items (Rust's way of sharing private helpers within one folder); every
//! other arrow counts. Test modules (`#[cfg(test)]`) and `src/bin/` are left out: the rules
//! are about what ships.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The crates whose files are checked.
const CRATES: [&str; 5] = ["system", "study", "harness", "xtask", "launch"];

#[test]
fn no_file_imports_another_in_a_circle() {
    let root = workspace_root();
    let mut circles = Vec::new();
    for krate in CRATES {
        let graph = Graph::read(&root.join(krate).join("src"));
        for circle in graph.circles() {
            circles.push(format!("{krate}: {}", graph.describe(&circle)));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let rules = Layers::parse(&text);
    assert!(
        !rules.crates.is_empty(),
        "ARCHITECTURE.md has no ```layers block"
    );
    let mut wrong = Vec::new();
    for (krate, layers) in &rules.crates {
        let graph = Graph::read(&root.join(krate).join("src"));
        wrong.extend(layers.check(krate, &graph));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_a_planted_circle_and_a_forbidden_arrow() {
    let files = [
        ("lib.rs", "mod a; mod b; pub mod c;"),
        ("a.rs", "use crate::{b::{self, Thing}, c};\nmod inner;"),
        ("a/inner.rs", "fn f() { super::helper(); }"),
        (
            "b.rs",
            "// crate::c::nothing\nfn f() { let s = \"crate::c\"; crate::a::g(); }",
        ),
        ("c.rs", "#[cfg(test)]\nmod tests { use crate::a::x; }"),
    ];
    let graph = Graph::from_files(
        files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned())),
    );
    let circles = graph.circles();
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert_eq!(graph.describe(&circles[0]), "a.rs -> b.rs -> a.rs");
    let layers = Layers::parse("```layers\nx top a\nx bottom b c\n```\n");
    let wrong = layers.crates["x"].check("x", &graph);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("b.rs"), "{wrong:?}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// The files of one crate and the imports between them.
struct Graph {
    /// Each file's module path (`["queue", "nats"]`), by index.
    modules: Vec<Vec<String>>,
    files: Vec<PathBuf>,
    /// Arrows, from a file to the files it imports (ancestors left out).
    arrows: Vec<BTreeSet<usize>>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let mut found = Vec::new();
        collect(src, src, &mut found);
        Self::from_files(found)
    }

    fn from_files(files: impl IntoIterator<Item = (PathBuf, String)>) -> Self {
        let mut files: Vec<(PathBuf, String)> = files.into_iter().collect();
        files.sort();
        let texts: Vec<String> = files.iter().map(|(_, text)| strip(text)).collect();
        let paths: Vec<PathBuf> = files.into_iter().map(|(path, _)| path).collect();
        let modules: Vec<Vec<String>> = paths.iter().map(|path| module_of(path)).collect();
        // Files declared as test modules by their parent are left out, with their children.
        let mut tests: BTreeSet<Vec<String>> = BTreeSet::new();
        for (module, text) in modules.iter().zip(&texts) {
            for child in test_children(text) {
                let mut path = module.clone();
                path.push(child);
                tests.insert(path);
            }
        }
        let kept: Vec<usize> = (0..paths.len())
            .filter(|&i| !tests.iter().any(|t| modules[i].starts_with(t)))
            .filter(|&i| !modules[i].is_empty() || paths[i].ends_with("lib.rs"))
            .collect();
        let paths: Vec<PathBuf> = kept.iter().map(|&i| paths[i].clone()).collect();
        let texts: Vec<String> = kept
            .iter()
            .map(|&i| without_test_blocks(&texts[i]))
            .collect();
        let modules: Vec<Vec<String>> = kept.iter().map(|&i| modules[i].clone()).collect();
        let index: BTreeMap<&[String], usize> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_slice(), i))
            .collect();
        let mut arrows = vec![BTreeSet::new(); modules.len()];
        for (from, text) in texts.iter().enumerate() {
            let here = &modules[from];
            for path in paths_named(text) {
                let Some(target) = resolve(here, &path, &index) else {
                    continue;
                };
                let to = index[target.as_slice()];
                if to != from && !here.starts_with(&modules[to]) {
                    arrows[from].insert(to);
                }
            }
        }
        Self {
            modules,
            files: paths,
            arrows,
        }
    }

    /// Every circle: the strongly connected groups of more than one file (Tarjan).
    fn circles(&self) -> Vec<Vec<usize>> {
        struct State<'a> {
            arrows: &'a [BTreeSet<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            found: Vec<Vec<usize>>,
        }
        fn visit(s: &mut State<'_>, v: usize) {
            s.index[v] = Some(s.next);
            s.low[v] = s.next;
            s.next += 1;
            s.stack.push(v);
            s.on_stack[v] = true;
            for &w in s.arrows[v].iter() {
                match s.index[w] {
                    None => {
                        visit(s, w);
                        s.low[v] = s.low[v].min(s.low[w]);
                    }
                    Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(s.low[v]) == s.index[v] {
                let mut group = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    s.found.push(group);
                }
            }
        }
        let n = self.modules.len();
        let mut state = State {
            arrows: &self.arrows,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            found: Vec::new(),
        };
        for v in 0..n {
            if state.index[v].is_none() {
                visit(&mut state, v);
            }
        }
        state.found
    }

    /// One loop through a circle's files, as `a.rs -> b.rs -> a.rs`.
    fn describe(&self, circle: &[usize]) -> String {
        let members: BTreeSet<usize> = circle.iter().copied().collect();
        let start = circle[0];
        // The shortest way back to the start within the circle (breadth first).
        let mut previous: BTreeMap<usize, usize> = BTreeMap::new();
        let mut frontier = vec![start];
        'search: while !frontier.is_empty() {
            let mut next = Vec::new();
            for v in frontier {
                for &w in &self.arrows[v] {
                    if !members.contains(&w) || previous.contains_key(&w) {
                        continue;
                    }
                    previous.insert(w, v);
                    if w == start {
                        break 'search;
                    }
                    next.push(w);
                }
            }
            frontier = next;
        }
        let mut walk = vec![start];
        let mut at = previous[&start];
        while at != start {
            walk.push(at);
            at = previous[&at];
        }
        walk.push(start);
        walk.reverse();
        walk.iter()
            .map(|&v| self.files[v].display().to_string())
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

/// Every `.rs` file under `dir`, outside `src/bin/`, with its path relative to `src`.
fn collect(src: &Path, dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path.strip_prefix(src).expect("under src").to_path_buf();
        if path.is_dir() {
            if relative != Path::new("bin") {
                collect(src, &path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            found.push((relative, text));
        }
    }
}

/// A file's module path: `queue` then `nats` for the file `nats.rs` in the folder `queue`;
/// `lib.rs`, `main.rs` and `mod.rs` as Rust reads them.
fn module_of(path: &Path) -> Vec<String> {
    let mut parts: Vec<String> = path
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comments, and with every string and char literal emptied.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('#' | '"'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime, which stays.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The names of the child modules declared `#[cfg(test)] mod name;`.
fn test_children(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = skip_attributes(rest);
        let item = item
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if let Some(decl) = item.strip_prefix("mod ") {
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if decl[name.len()..].trim_start().starts_with(';') {
                found.push(name);
            }
        }
    }
    found
}

/// `text` after any further attributes and whitespace.
fn skip_attributes(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if !text.starts_with("#[") {
            return text;
        }
        text = &text[item_end(text, '[', ']')..];
    }
}

/// The text without its `#[cfg(test)]` items written in place (`mod tests { … }`, test
/// functions).
fn without_test_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = skip_attributes(&rest[at + "#[cfg(test)]".len()..]);
        rest = &item[item_end(item, '{', '}')..];
    }
    out.push_str(rest);
    out
}

/// Where the item at the start of `text` ends: after the bracket closing its first `open`
/// (nested ones counted), or after a `;` met outside brackets; the whole text when neither
/// comes.
fn item_end(text: &str, open: char, close: char) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        } else if c == ';' && depth == 0 {
            return i + 1;
        }
    }
    text.len()
}

/// Every path the text names that may lead into the crate: `use` trees expanded, and paths
/// in code.
fn paths_named(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        if word == "use" {
            let end = text[i..].find(';').map_or(text.len(), |e| i + e);
            expand(text[i..end].trim(), &mut Vec::new(), &mut found);
            i = end;
        } else if text[i..].starts_with("::") {
            // A path in code: its identifiers up to the first that is not followed by `::`.
            let mut path = vec![word.to_owned()];
            let mut j = i;
            while text[j..].starts_with("::") {
                let s = j + 2;
                let mut e = s;
                while e < bytes.len() && is_ident(bytes[e]) {
                    e += 1;
                }
                if e == s {
                    break;
                }
                path.push(text[s..e].to_owned());
                j = e;
            }
            found.push(path);
            i = j;
        }
    }
    found
}

/// Expands a use tree (`crate::{a, b::{c, d as e}}`) into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let depth_before = prefix.len();
        prefix.extend(segments(head));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top(inner) {
            expand(part, prefix, found);
        }
        prefix.truncate(depth_before);
    } else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut full = prefix.clone();
        full.extend(segments(path));
        found.push(full);
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "*")
        .map(str::to_owned)
        .collect()
}

/// `a, b::{c, d}, e` split at its top-level commas.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The deepest module of the crate that `path`, named in module `here`, leads into.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeMap<&[String], usize>,
) -> Option<Vec<String>> {
    let mut at: Vec<String>;
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at = Vec::new();
            rest = &rest[1..];
        }
        Some("self") => {
            at = here.to_vec();
            rest = &rest[1..];
        }
        Some("super") => {
            at = here.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                at.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first) => {
            // A child module named without `self::`.
            let mut child = here.to_vec();
            child.push(first.to_owned());
            if !modules.contains_key(child.as_slice()) {
                return None;
            }
            at = here.to_vec();
        }
        None => return None,
    }
    for segment in rest {
        let mut deeper = at.clone();
        deeper.push(segment.clone());
        if !modules.contains_key(deeper.as_slice()) {
            break;
        }
        at = deeper;
    }
    (!at.is_empty()).then_some(at)
}

/// The layers of each crate, from the top down, and the modules in each.
struct Layers {
    crates: BTreeMap<String, CrateLayers>,
}

struct CrateLayers {
    /// (layer, its modules as paths), top first.
    layers: Vec<(String, Vec<Vec<String>>)>,
}

impl Layers {
    /// Reads the ```layers blocks: one line per layer, top first, as
    /// `crate layer module…` (modules as `a` or `a::b`).
    fn parse(markdown: &str) -> Self {
        let mut crates: BTreeMap<String, CrateLayers> = BTreeMap::new();
        let mut inside = false;
        for line in markdown.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                inside = trimmed == "```layers";
                continue;
            }
            if !inside || trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut words = trimmed.split_whitespace();
            let (Some(krate), Some(layer)) = (words.next(), words.next()) else {
                continue;
            };
            crates
                .entry(krate.to_owned())
                .or_insert_with(|| CrateLayers { layers: Vec::new() })
                .layers
                .push((layer.to_owned(), words.map(segments).collect()));
        }
        Self { crates }
    }
}

impl CrateLayers {
    /// The layer of a module (by its longest listed prefix), as an index from the top.
    fn layer_of(&self, module: &[String]) -> Option<usize> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, (_, prefixes))| prefixes.iter().map(move |p| (i, p)))
            .filter(|(_, p)| module.starts_with(p))
            .max_by_key(|(_, p)| p.len())
            .map(|(i, _)| i)
    }

    /// What breaks the rules: a file in no layer, or an arrow up.
    fn check(&self, krate: &str, graph: &Graph) -> Vec<String> {
        let mut wrong = Vec::new();
        for (from, module) in graph.modules.iter().enumerate() {
            if module.is_empty() {
                continue;
            }
            let Some(from_layer) = self.layer_of(module) else {
                wrong.push(format!(
                    "{krate}/src/{} is in no layer of ARCHITECTURE.md",
                    graph.files[from].display()
                ));
                continue;
            };
            for &to in &graph.arrows[from] {
                let Some(to_layer) = self.layer_of(&graph.modules[to]) else {
                    continue;
                };
                if to_layer < from_layer {
                    wrong.push(format!(
                        "{krate}/src/{} ({}) imports {} ({}), a layer above",
                        graph.files[from].display(),
                        self.layers[from_layer].0,
                        graph.files[to].display(),
                        self.layers[to_layer].0,
                    ));
                }
            }
        }
        wrong
    }
}
