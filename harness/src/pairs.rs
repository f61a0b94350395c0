//! Which variant of a group is the baseline and which the optimization, so that every
//! suite labels its cases the same way and the report can compute ratios.

use crate::results::Side;

/// The side of `variant` in its A/B pair, or `None` for a variant that is neither.
pub fn side(variant: &str) -> Option<Side> {
    match variant {
        "memory" | "baseline" | "http1" | "json" | "unbatched" | "glibc" | "bare" => {
            Some(Side::Baseline)
        }
        "pooled" | "h2c" | "protobuf" | "batched" | "mimalloc" | "grpc_unary" | "grpc_stream"
        | "system" => Some(Side::Optimized),
        _ => None,
    }
}

/// The default value of the `system` binary's setting named by its environment variable
/// `env` (e.g. `QUEUE_TYPE` → `pooled`), read from its command-line definition, so that the
/// report names the defaults the code has.
pub fn default_setting(env: &str) -> Option<String> {
    use clap::CommandFactory as _;
    let command = system::config::Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == env))?;
    Some(
        arg.get_default_values()
            .first()?
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_are_read_from_the_system_command_line() {
        assert_eq!(
            super::default_setting("QUEUE_SIZE").as_deref(),
            Some("1000")
        );
        assert_eq!(super::default_setting("NO_SUCH_SETTING"), None);
    }
}
