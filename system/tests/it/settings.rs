//! The `system` binary's settings: each role takes the flags it uses and refuses the others
//! (with all roles in one process every flag is taken), and the README's settings table
//! says what the command line says: the same variables, flags, defaults and roles.

use std::{
    collections::BTreeMap,
    process::{Command, ExitStatus},
    time::Duration,
};

use clap::CommandFactory;
use launch::Launch;
use system::config::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_system");

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));

/// What a run of `system` that ended left: its exit status and its output (stdout and
/// stderr, as they came).
struct Ended {
    status: ExitStatus,
    output: String,
}

/// Runs `system args` on free ports and waits for it to exit; a run that is still going
/// after 20 s (a role that started instead of refusing its flags) is stopped and fails.
fn run(args: &[&str]) -> Ended {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("PROCESSOR_PORT", "0")
        .env("API_PORT", "0")
        .env("GRPC_PORT", "0");
    let mut running = Launch::new(command)
        .start()
        .unwrap_or_else(|err| panic!("{err}"));
    let Some(status) = running.wait(Duration::from_secs(20)) else {
        panic!("`system {}` still runs after 20 s", args.join(" "));
    };
    Ended {
        status,
        output: running.output(),
    }
}

/// The help of `system args --help`.
fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let ended = run(&all);
    assert!(ended.status.success(), "{all:?}: {}", ended.output);
    ended.output
}

/// Asserts that `help` names each flag of `present` and none of `absent`.
fn assert_flags(what: &str, help: &str, present: &[&str], absent: &[&str]) {
    for flag in present {
        assert!(
            help.contains(&format!("{flag} ")),
            "{what} lacks {flag}:\n{help}"
        );
    }
    for flag in absent {
        assert!(
            !help.contains(&format!("{flag} ")),
            "{what} lists {flag}:\n{help}"
        );
    }
}

const QUEUE_FLAGS: [&str; 6] = [
    "--queue-type",
    "--queue-size",
    "--queue-bytes",
    "--dedup-ids",
    "--nats-url",
    "--nats-stream",
];
const HOP_FLAGS: [&str; 5] = [
    "--processor-url",
    "--hop-batch",
    "--client-mode",
    "--processor-ca",
    "--hop-client-cert",
];

#[test]
fn the_grpc_role_lists_only_its_own_settings() {
    let help = help(&["grpc"]);
    let mut absent = QUEUE_FLAGS.to_vec();
    absent.extend([
        "--api-port",
        "--body-limit",
        "--processor-port",
        "--processor-workers",
        "--tls-client-ca",
    ]);
    let mut present = HOP_FLAGS.to_vec();
    present.extend([
        "--grpc-port",
        "--grpc-metrics-port",
        "--ingest-token",
        "--tls-cert",
    ]);
    assert_flags("system grpc --help", &help, &present, &absent);
}

#[test]
fn the_processor_role_lists_only_its_own_settings() {
    let help = help(&["processor"]);
    let mut present = QUEUE_FLAGS.to_vec();
    present.extend([
        "--processor-port",
        "--processor-workers",
        "--worker-mode",
        "--tls-client-ca",
        "--processor-token",
    ]);
    let mut absent = HOP_FLAGS.to_vec();
    absent.extend([
        "--api-port",
        "--grpc-port",
        "--ingest-token",
        "--body-limit",
    ]);
    assert_flags("system processor --help", &help, &present, &absent);
    for heading in ["Queue:", "NATS:", "TLS:"] {
        assert!(help.contains(heading), "no {heading} in:\n{help}");
    }
}

#[test]
fn the_gateway_role_lists_only_its_own_settings() {
    let help = help(&["gateway"]);
    let mut present = HOP_FLAGS.to_vec();
    present.extend(["--api-port", "--body-limit", "--api-plain-port"]);
    let mut absent = QUEUE_FLAGS.to_vec();
    absent.extend(["--grpc-port", "--processor-workers", "--tls-client-ca"]);
    assert_flags("system gateway --help", &help, &present, &absent);
}

/// A flag of another role is a usage error (exit 2, naming the flag), not silently
/// ignored; and so is a flag given before the role instead of after it.
#[test]
fn a_flag_of_another_role_is_refused() {
    for args in [
        &["gateway", "--nats-url", "nats://x:4222"][..],
        &["grpc", "--queue-type", "memory"],
        &["processor", "--processor-url", "http://127.0.0.1:1"],
        &["processor", "--api-port", "0"],
        &["--queue-size", "5", "gateway"],
    ] {
        let ended = run(args);
        let stderr = &ended.output;
        assert_eq!(ended.status.code(), Some(2), "{args:?}: {stderr}");
        let flag = args.iter().find(|a| a.starts_with("--")).unwrap();
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// With no role (all of them in one process) every setting of every role is taken.
#[test]
fn all_roles_take_every_setting() {
    let all = help(&["--nats-url", "nats://127.0.0.1:4222", "--api-port", "0"]);
    for role in ["processor", "gateway", "grpc"] {
        let flags: Vec<String> = help(&[role])
            .split_whitespace()
            .filter(|word| word.starts_with("--") && *word != "--help")
            .map(|word| word.trim_end_matches(',').to_owned())
            .collect();
        assert!(flags.len() > 10, "{role}: {flags:?}");
        for flag in flags {
            assert!(all.contains(&flag), "`system --help` lacks {flag}:\n{all}");
        }
    }
}

/// One row of the settings table: flag, default and roles, by variable.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    flag: String,
    default: String,
    roles: String,
}

/// The settings table of the README (the one whose header begins `| variable |`), with the
/// other variables the table names (in any column) alongside.
fn readme_rows() -> BTreeMap<String, Row> {
    let start = README
        .find("\n| variable |")
        .expect("the README has a settings table");
    let mut rows = BTreeMap::new();
    for line in README[start + 1..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "not 5 columns: {line}");
        let variable = cells[0].trim_matches('`').to_owned();
        let row = Row {
            flag: cells[1].to_owned(),
            default: cells[2].to_owned(),
            roles: cells[3].to_owned(),
        };
        assert!(rows.insert(variable, row).is_none(), "twice: {line}");
    }
    rows
}

/// What the command line defines, by variable: its flag, its default (or none) and the
/// roles that take it.
fn cli_rows() -> BTreeMap<String, (String, Option<String>, Vec<String>)> {
    let command = Cli::command();
    let mut rows = BTreeMap::new();
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let flag = format!("`--{}`", arg.get_long().unwrap());
        let default = arg
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned());
        rows.insert(
            env.to_string_lossy().into_owned(),
            (flag, default, Vec::new()),
        );
    }
    for role in command.get_subcommands() {
        for arg in role.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_string_lossy().into_owned();
            let row = rows
                .get_mut(&env)
                .unwrap_or_else(|| panic!("{env} of `{}` is not a setting of all roles", role));
            row.2.push(role.get_name().to_owned());
        }
    }
    rows
}

/// The README names the roles of a setting `all`, or lists them (`gateway, grpc`).
fn roles_cell(roles: &[String]) -> String {
    if roles.len() == 3 {
        "all".to_owned()
    } else {
        roles.join(", ")
    }
}

#[test]
fn the_readme_table_is_the_command_line() {
    let readme = readme_rows();
    let cli = cli_rows();
    assert!(cli.len() > 40, "{cli:?}");
    for (env, (flag, default, roles)) in &cli {
        let row = readme
            .get(env)
            .unwrap_or_else(|| panic!("the README's settings table lacks {env}"));
        assert_eq!(&row.flag, flag, "flag of {env}");
        assert_eq!(row.roles, roles_cell(roles), "roles of {env}");
        match default {
            Some(value) => assert_eq!(row.default, format!("`{value}`"), "default of {env}"),
            // Without a default of its own a setting is unset, or follows another setting.
            None => assert!(
                row.default == "none"
                    || cli
                        .keys()
                        .any(|other| other != env && row.default.contains(&format!("`{other}`"))),
                "{env} has no default, the README says {}",
                row.default
            ),
        }
    }
    for env in readme.keys() {
        assert!(cli.contains_key(env), "the README names {env}, no setting");
    }
}
