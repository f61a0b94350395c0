//! Which variant of a group is the baseline (in `study::pairs`), and the `system` binary's
//! defaults, read from its command line.

pub use study::pairs::side;

use crate::results::{Case, ResultFile};

/// The suite of the file that records the defaults.
pub const DEFAULTS_SUITE: &str = "defaults";

/// The default value of the `system` binary's setting named by its environment variable
/// `env` (e.g. `QUEUE_TYPE` → `pooled`), read from its command-line definition, so that the
/// report names the defaults the code has.
pub fn default_setting(env: &str) -> Option<String> {
    defaults()
        .into_iter()
        .find(|(e, _)| e == env)
        .map(|(_, v)| v)
}

/// Every setting with a default, as (environment variable, default value): those of the
/// command line without a role (all roles in one process), then any that only a role's
/// command line has, each once, in the order the command line defines them.
pub fn defaults() -> Vec<(String, String)> {
    use clap::CommandFactory as _;
    let command = system::config::Cli::command();
    let mut found: Vec<(String, String)> = Vec::new();
    let lines = std::iter::once(&command).chain(command.get_subcommands());
    for arg in lines.flat_map(|line| line.get_arguments()) {
        let Some(env) = arg.get_env() else { continue };
        let Some(value) = arg.get_default_values().first() else {
            continue;
        };
        let env = env.to_string_lossy().into_owned();
        if !found.iter().any(|(known, _)| *known == env) {
            found.push((env, value.to_string_lossy().into_owned()));
        }
    }
    found
}

/// The result file `defaults.json`: one case per setting (`defaults` / its environment
/// variable, the value in the `value` parameter).
pub fn defaults_file() -> ResultFile {
    let mut file = ResultFile::new(DEFAULTS_SUITE, "cargo run -p harness --bin defaults");
    file.cases = defaults()
        .into_iter()
        .map(|(env, value)| Case::new(DEFAULTS_SUITE, &env, None).param("value", value))
        .collect();
    file
}

#[cfg(test)]
mod tests {
    use crate::results::{ResultFile, default_dir};

    #[test]
    fn defaults_are_read_from_the_system_command_line() {
        assert_eq!(
            super::default_setting(system::config::names::QUEUE_SIZE).as_deref(),
            Some("1000")
        );
        assert_eq!(super::default_setting("NO_SUCH_SETTING"), None);
    }

    #[test]
    fn the_committed_defaults_are_the_code_s() {
        let path = default_dir().join("defaults.json");
        let committed = ResultFile::read(&path).expect("reports/results/defaults.json");
        let recorded: Vec<(String, String)> = committed
            .cases
            .iter()
            .map(|c| (c.variant.clone(), c.params["value"].clone()))
            .collect();
        assert_eq!(
            recorded,
            super::defaults(),
            "the system's defaults changed: run `cargo run -p harness --bin defaults` \
             (and the suites whose pairs they decide)"
        );
    }
}
