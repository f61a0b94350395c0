//! `cargo xtask report [--check] [--html]`: renders `templates/PHASE3_COMPLETE.md.tera` into
//! `reports/PHASE3_COMPLETE.md`, the charts into `reports/charts/` and both into one
//! self-contained page, `reports/PHASE3_COMPLETE.html`, from the result files in
//! `reports/results/` (with the histograms they name) and the profiles in `reports/profiles/`
//! alone. The same files always render to the same bytes, so `--check` can tell whether the
//! committed report is what the committed results say.

mod charts;
mod evidence;
mod html;
mod spectrum;
mod svg;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use serde_json::json;
use study::results::ResultFile;

use self::evidence::Evidence;
use crate::cmd::workspace_root;

/// Where a report is read from and written to.
pub(crate) struct Paths {
    pub(crate) results: PathBuf,
    pub(crate) profiles: PathBuf,
    pub(crate) template: PathBuf,
    pub(crate) readme: PathBuf,
    pub(crate) out: PathBuf,
}

impl Paths {
    fn project() -> Paths {
        let root = workspace_root();
        Paths {
            results: root.join("reports/results"),
            profiles: root.join("reports/profiles"),
            template: root.join("templates/PHASE3_COMPLETE.md.tera"),
            readme: root.join("README.md"),
            out: root.join("reports"),
        }
    }
}

/// The rendered report: file name (relative to the output directory) → contents.
pub(crate) type Rendered = BTreeMap<String, String>;

/// `cargo xtask report`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write nothing; fail when the committed report is not what the results render to.
    #[arg(long)]
    check: bool,
    /// Only the self-contained HTML page (reports/PHASE3_COMPLETE.html): write it, or with
    /// --check check it.
    #[arg(long)]
    html: bool,
}

/// The Markdown report's file name in the output directory.
const MARKDOWN: &str = "PHASE3_COMPLETE.md";

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let paths = Paths::project();
    let mut rendered = render(&paths)?;
    if args.html {
        rendered.retain(|name, _| name == html::PAGE);
    }
    if args.check {
        let stale = stale_files(&paths.out, &rendered);
        if stale.is_empty() {
            println!("report: up to date with reports/results");
            return Ok(());
        }
        bail!(
            "report: out of date with the committed results (run `cargo xtask report`): {}",
            stale.join(", ")
        );
    }
    write(&paths.out, &rendered)?;
    let page = paths.out.join(html::PAGE);
    if args.html {
        println!("{}", page.display());
    } else {
        println!(
            "report: wrote {}, {} and {} charts",
            paths.out.join(MARKDOWN).display(),
            page.display(),
            rendered.keys().filter(|k| k.starts_with("charts/")).count()
        );
    }
    Ok(())
}

/// Renders the report, its charts and its page from the files under `paths`.
pub(crate) fn render(paths: &Paths) -> anyhow::Result<Rendered> {
    let evidence = load(paths)?;
    let mut rendered = Rendered::new();
    let charts = charts::all(&evidence);
    for (name, _, svg) in &charts {
        rendered.insert(format!("charts/{name}.svg"), svg.clone());
    }
    let spectra = spectrum::all(&evidence, &paths.results)?;
    for s in &spectra {
        rendered.insert(format!("charts/{}.svg", s.name), s.svg.clone());
    }
    if let Some(svg) = evidence.soak_chart() {
        rendered.insert("charts/soak_rss.svg".to_owned(), svg);
    }
    let template = fs::read_to_string(&paths.template)
        .with_context(|| format!("reading {}", paths.template.display()))?;
    let files: Vec<_> = evidence
        .files
        .values()
        .map(|f| {
            json!({
                "suite": f.suite,
                "command": f.command,
                "revision": f.git_revision,
                "machine": format!("{} ({} cores, {})", f.machine.cpu_model, f.machine.cores, f.machine.os),
                "notes": f.notes,
                "cases": f.cases.len(),
            })
        })
        .collect();
    let checklist: Vec<_> = evidence
        .checklist()
        .into_iter()
        .map(|(section, items)| json!({"section": section, "items": items}))
        .collect();
    let context = json!({
        "files": files,
        "pairs": evidence.pairs(),
        "end_to_end": evidence.end_to_end(),
        "defaults": evidence.defaults(),
        "tls": evidence.tls(),
        "queue": evidence.queue(),
        "stages": evidence.stages(),
        "stage_names": evidence.stage_names(),
        "loads": study::catalogue::LOADS.map(|l| format!("{:.0}%", l * 100.0)),
        "checklist": checklist,
        "targets": evidence.targets(),
        "peers": evidence.peers(),
        "charts": charts.iter().map(|(name, title, _)| json!({"name": name, "title": title})).collect::<Vec<_>>(),
        "spectra": spectra.iter().map(|s| json!({"name": s.name, "title": s.title})).collect::<Vec<_>>(),
        "hot_paths": hot_paths(&paths.profiles)?,
        "profiles": evidence.profiles,
        "soak": evidence.soak(),
        "abuse": evidence.abuse(),
        "shapes": evidence.shapes(),
    });
    let context = tera::Context::from_serialize(context)?;
    let markdown =
        tera::Tera::one_off(&template, &context, false).context("rendering the template")?;
    let page = html::page(&markdown, &rendered)?;
    rendered.insert(MARKDOWN.to_owned(), markdown);
    rendered.insert(html::PAGE.to_owned(), page);
    Ok(rendered)
}

fn load(paths: &Paths) -> anyhow::Result<Evidence> {
    let mut files = BTreeMap::new();
    if paths.results.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&paths.results)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        entries.sort();
        for path in entries {
            let file = ResultFile::read(&path)?;
            files.insert(file.suite.clone(), file);
        }
    }
    let mut profiles = Vec::new();
    if paths.profiles.is_dir() {
        for entry in fs::read_dir(&paths.profiles)? {
            profiles.push(entry?.file_name().to_string_lossy().into_owned());
        }
    }
    profiles.sort();
    let readme = fs::read_to_string(&paths.readme).unwrap_or_default();
    Ok(Evidence {
        files,
        profiles,
        readme_has_grpc: readme.contains("## gRPC") && readme.contains("grpcurl"),
    })
}

/// The top frames of every profile (`<component>.top.json`, written by `cargo xtask profile`),
/// each with its contention view (`<component>.contention.json`) under `contention` and its
/// allocation sites (`<component>.alloc_sites.json`) under `alloc_sites` when they exist.
fn hot_paths(dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut tops: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".top.json"))
        .collect();
    tops.sort();
    for path in tops {
        let text = fs::read_to_string(&path)?;
        let mut top: serde_json::Value = serde_json::from_str(&text)?;
        if let Some(list) = top.get_mut("by_self").and_then(|v| v.as_array_mut()) {
            list.truncate(5);
        }
        for (key, suffix) in [
            ("contention", ".contention.json"),
            ("alloc_sites", ".alloc_sites.json"),
        ] {
            let companion = path.to_string_lossy().replace(".top.json", suffix);
            if let Ok(text) = fs::read_to_string(&companion)
                && let Some(object) = top.as_object_mut()
            {
                object.insert(key.into(), serde_json::from_str(&text)?);
            }
        }
        out.push(top);
    }
    Ok(out)
}

fn write(out: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    for name in leftover_charts(out, rendered) {
        fs::remove_file(out.join(name))?;
    }
    for (name, contents) in rendered {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)?;
    }
    Ok(())
}

/// Files whose committed contents differ from what the results render to, and charts the
/// results no longer render.
fn stale_files(out: &Path, rendered: &Rendered) -> Vec<String> {
    let mut stale: Vec<String> = rendered
        .iter()
        .filter(|(name, contents)| {
            fs::read_to_string(out.join(name)).ok().as_deref() != Some(contents.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect();
    stale.extend(
        leftover_charts(out, rendered)
            .into_iter()
            .map(|name| format!("{name} (no longer rendered)")),
    );
    stale
}

/// Charts in `out/charts/` that a full rendering (one with the Markdown) does not produce.
fn leftover_charts(out: &Path, rendered: &Rendered) -> Vec<String> {
    if !rendered.contains_key(MARKDOWN) {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir(out.join("charts")) else {
        return Vec::new();
    };
    let mut leftover: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| format!("charts/{}", e.file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".svg") && !rendered.contains_key(name))
        .collect();
    leftover.sort();
    leftover
}

#[cfg(test)]
mod chromium_tests;
#[cfg(test)]
mod tests;
