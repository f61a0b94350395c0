//! `cargo xtask compare A B`: two sets of results case by case (each a results directory or
//! a git revision whose committed results are read): both values with the range of their
//! rounds, the ratio B/A, and whether the difference exceeds that range (rules in
//! `study::compare`).

use study::compare::{Verdict, compare, table};

use crate::{cmd::print_out, results::read_set};

/// `cargo xtask compare`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The first set: a results directory or a git revision.
    #[arg(value_name = "A")]
    a: String,
    /// The second set: a results directory or a git revision.
    #[arg(value_name = "B")]
    b: String,
    /// Only this suite (e.g. load, callgrind); may be repeated.
    #[arg(long)]
    suite: Vec<String>,
    /// Only the rows whose difference exceeds the spread of the rounds.
    #[arg(long)]
    changed: bool,
    /// Print the rows as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let keep = |files: Vec<study::results::ResultFile>| -> Vec<_> {
        files
            .into_iter()
            .filter(|f| args.suite.is_empty() || args.suite.contains(&f.suite))
            .collect()
    };
    let a = keep(read_set(&args.a)?);
    let b = keep(read_set(&args.b)?);
    let mut rows = compare(&a, &b);
    if args.changed {
        rows.retain(|r| r.verdict != Verdict::Same);
    }
    if args.json {
        return print_out(&(serde_json::to_string_pretty(&rows)? + "\n"));
    }
    let mut text = table(&rows, &args.a, &args.b);
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    text += &format!(
        "{} row(s): {} better, {} worse, {} changed beyond the spread of the rounds\n",
        rows.len(),
        count(Verdict::Better),
        count(Verdict::Worse),
        count(Verdict::Changed)
    );
    print_out(&text)
}
