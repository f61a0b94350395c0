//! The documentation against the code it describes: every suite that writes a result file
//! has its row in `docs/results-schema.md`, every crate of the workspace and every module
//! and program of the harness is on `ARCHITECTURE.md`'s map, and every file a comment
//! points at exists.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use harness::results::ResultFile;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The suites named in the first column of the schema document's table of suites (the
/// table whose header begins `| suite |`).
fn documented_suites(schema: &str) -> BTreeSet<String> {
    let mut suites = BTreeSet::new();
    let mut in_table = false;
    for line in schema.lines() {
        if line.starts_with("| suite |") {
            in_table = true;
        } else if !line.starts_with('|') {
            in_table = false;
        } else if in_table
            && let Some((suite, _)) = line
                .strip_prefix("| `")
                .and_then(|rest| rest.split_once('`'))
        {
            suites.insert(suite.to_owned());
        }
    }
    suites
}

#[test]
fn every_suite_with_a_result_file_is_in_the_schema_document() {
    let root = root();
    let schema = read(&root.join("docs/results-schema.md"));
    let documented = documented_suites(&schema);
    let mut missing = Vec::new();
    for entry in fs::read_dir(root.join("reports/results")).expect("reports/results") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let file = ResultFile::read(&path).unwrap_or_else(|err| panic!("{err}"));
        if !documented.contains(&file.suite) {
            missing.push(file.suite);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/results-schema.md has no row for the suites {missing:?} \
         (documented: {documented:?})"
    );
}

/// The names of the `pub mod` items of a crate root.
fn public_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim().to_owned())
        .collect()
}

/// The crates of the workspace's `members = [...]` line.
fn workspace_members(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("members = ["))
        .map(|list| {
            list.trim_end_matches(']')
                .split(',')
                .map(|name| name.trim().trim_matches('"').to_owned())
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_crate_harness_module_and_program_is_on_the_architecture_map() {
    let root = root();
    let map = read(&root.join("ARCHITECTURE.md"));
    let mut missing = Vec::new();
    for module in public_modules(&read(&root.join("harness/src/lib.rs"))) {
        let path = format!("harness::{module}");
        if !map.contains(&path) {
            missing.push(path);
        }
    }
    for member in workspace_members(&read(&root.join("Cargo.toml"))) {
        let named = format!("`{member}`");
        if !map.contains(&named) {
            missing.push(named);
        }
    }
    for entry in fs::read_dir(root.join("harness/src/bin")).expect("harness/src/bin") {
        let name = entry.expect("an entry").file_name();
        let file = format!("bin/{}", name.to_string_lossy());
        if !map.contains(&file) {
            missing.push(file);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's codemap does not mention {missing:?}"
    );
}

/// The file paths a line of a doc or line comment names: words with a `/` that end in a
/// file extension, without placeholders (`<group>`, `DIR/`) or globs.
fn named_paths(comment: &str) -> Vec<&str> {
    const EXTENSIONS: [&str; 7] = [".rs", ".md", ".json", ".toml", ".sh", ".svg", ".tera"];
    comment
        .split(|c: char| c.is_whitespace() || "`()[],;:'\"".contains(c))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| word.contains('/') && !word.starts_with("//"))
        .filter(|word| EXTENSIONS.iter().any(|ext| word.ends_with(ext)))
        .filter(|word| !word.contains(['<', '*', '{', '$']))
        .filter(|word| !word.split('/').any(|part| part == "DIR" || part == "..."))
        .collect()
}

/// Whether `named`, written in `file` of `krate`, exists: relative to the file's own
/// directory, its crate's `src/`, the crate, the workspace root or `reports/`.
fn exists(root: &Path, krate: &Path, file: &Path, named: &str) -> bool {
    let dir = file.parent().unwrap_or(root);
    [dir, &krate.join("src"), krate, root, &root.join("reports")]
        .iter()
        .any(|base| base.join(named).exists())
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn every_file_a_comment_names_exists() {
    let root = root();
    let mut dangling = Vec::new();
    for krate in ["system", "study", "harness", "xtask"] {
        let krate = root.join(krate);
        let mut files = Vec::new();
        for dir in ["src", "tests", "benches"] {
            rust_files(&krate.join(dir), &mut files);
        }
        for file in files {
            for (number, line) in read(&file).lines().enumerate() {
                let Some((_, comment)) = line.split_once("//") else {
                    continue;
                };
                for named in named_paths(comment) {
                    if !exists(&root, &krate, &file, named) {
                        let at = file.strip_prefix(&root).unwrap_or(&file).display();
                        dangling.push(format!("{at}:{}: {named}", number + 1));
                    }
                }
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "comments name files that do not exist:\n{}",
        dangling.join("\n")
    );
}

#[test]
fn a_path_in_a_comment_is_found_and_placeholders_are_not() {
    assert_eq!(
        named_paths("/// (`load/http1.rs`, `load/http2.rs`) and reports/results/load.json."),
        [
            "load/http1.rs",
            "load/http2.rs",
            "reports/results/load.json"
        ]
    );
    assert!(named_paths("/// `DIR/soak.json`, hgrm/<group>/x.json, https://a/b.md").is_empty());
}
