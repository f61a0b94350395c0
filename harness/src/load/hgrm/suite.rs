//! The `.hgrm` files of one suite's run, kept beside its result file: under
//! `<results>/hgrm/<suite>/`, each named in the result file by its path relative to
//! `<results>`. A run writes them into a staging directory and moves them in only when it
//! has finished ([`SuiteHistograms::publish`]), so a run that fails halfway never replaces
//! the files the last result file names, and no file of an older run is left behind to be
//! taken for one of the new run.

use std::{
    fs, io,
    path::{Component, Path, PathBuf},
};

use hdrhistogram::{Counter, Histogram};

/// Where one suite's run keeps its histograms until it publishes them.
#[derive(Debug)]
pub struct SuiteHistograms {
    results: PathBuf,
    suite: String,
    staging: PathBuf,
    published: bool,
}

impl SuiteHistograms {
    /// Prepares an empty staging directory for `suite`'s files under `results`.
    pub fn new(results: &Path, suite: &str) -> io::Result<SuiteHistograms> {
        check_relative(suite)?;
        let staging = results
            .join("hgrm")
            .join(format!(".{suite}.partial-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        Ok(SuiteHistograms {
            results: results.to_path_buf(),
            suite: suite.to_owned(),
            staging,
            published: false,
        })
    }

    /// Writes `latency_ns` (nanoseconds) as the file `name` (a relative path, `/` between
    /// its parts) and returns the path the result file names it by:
    /// `hgrm/<suite>/<name>`.
    pub fn write<T: Counter>(&self, name: &str, latency_ns: &Histogram<T>) -> io::Result<String> {
        check_relative(name)?;
        super::write(&self.staging.join(name), latency_ns)?;
        Ok(self.named(name))
    }

    /// Copies a `.hgrm` file written elsewhere in as `name`, like [`SuiteHistograms::write`].
    pub fn keep(&self, name: &str, file: &Path) -> io::Result<String> {
        check_relative(name)?;
        let path = self.staging.join(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::copy(file, &path)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", file.display())))?;
        Ok(self.named(name))
    }

    /// Replaces the suite's files of an earlier run with this run's.
    pub fn publish(mut self) -> io::Result<()> {
        let dir = self.results.join("hgrm").join(&self.suite);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::rename(&self.staging, &dir)?;
        self.published = true;
        Ok(())
    }

    fn named(&self, name: &str) -> String {
        format!("hgrm/{}/{name}", self.suite)
    }
}

impl Drop for SuiteHistograms {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// A file name that stays inside its directory: plain parts only (no `..`, no root).
fn check_relative(name: &str) -> io::Result<()> {
    let path = Path::new(name);
    if name.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a relative path of plain names"),
        ));
    }
    Ok(())
}

/// The part of a file name made of a case's group or variant: `/` becomes `_`, so that
/// `load/vs_bare` names one directory.
pub fn file_part(text: &str) -> String {
    text.replace(['/', '\\'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(ns: u64) -> Histogram<u64> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        hist.record(ns).unwrap();
        hist
    }

    #[test]
    fn files_appear_only_when_published_and_replace_the_last_runs() {
        let results = std::env::temp_dir().join(format!("hgrm-suite-{}", std::process::id()));
        let first = SuiteHistograms::new(&results, "load").unwrap();
        let old = first.write("g/a/old.hgrm", &histogram(1_000)).unwrap();
        assert_eq!(old, "hgrm/load/g/a/old.hgrm");
        assert!(!results.join(&old).exists(), "staged, not yet published");
        first.publish().unwrap();
        assert!(results.join(&old).exists());

        let failed = SuiteHistograms::new(&results, "load").unwrap();
        failed.write("g/a/old.hgrm", &histogram(9_000)).unwrap();
        drop(failed);
        let kept = super::super::read(&results.join(&old)).unwrap();
        assert_eq!(
            kept.last().unwrap().value_ms,
            0.001,
            "a failed run changes nothing"
        );

        let second = SuiteHistograms::new(&results, "load").unwrap();
        let new = second.write("g/a/new.hgrm", &histogram(2_000)).unwrap();
        second.publish().unwrap();
        assert!(results.join(&new).exists());
        assert!(
            !results.join(&old).exists(),
            "the older run's files are gone"
        );
        let entries = fs::read_dir(results.join("hgrm")).unwrap().count();
        assert_eq!(entries, 1, "no staging directory is left");
        let _ = fs::remove_dir_all(&results);
    }

    #[test]
    fn names_must_stay_inside_the_suites_directory() {
        let results = std::env::temp_dir().join(format!("hgrm-names-{}", std::process::id()));
        let kept = SuiteHistograms::new(&results, "load").unwrap();
        for name in ["../x.hgrm", "/x.hgrm", "", "a/../../x.hgrm"] {
            assert!(kept.write(name, &histogram(1)).is_err(), "{name}");
        }
        assert_eq!(file_part("load/vs_bare"), "load_vs_bare");
        drop(kept);
        let _ = fs::remove_dir_all(&results);
    }
}
