//! Whether the catalogue knows a case: its pairs ([`crate::pairs::PAIRS`]) or its other
//! groups ([`crate::cases::OTHER_GROUPS`]). A result file that names a case neither lists
//! was written by code that forgot to tell the catalogue ([`unknown`]).

use crate::{
    cases::{OTHER_GROUPS, Suite},
    pairs::{PAIRS, side},
    protocol::Protocol,
    results::ResultFile,
};

/// Whether the catalogue knows the case `group` / `variant` of `suite`.
pub fn known(suite: Suite, group: &str, variant: &str) -> bool {
    PAIRS.iter().any(|p| {
        p.suites.contains(&suite) && p.group == group && variant.parse().is_ok_and(|v| p.has(v))
    }) || OTHER_GROUPS
        .iter()
        .any(|g| g.suite == suite && g.has(group, variant))
}

/// What is wrong with the names of `file`'s cases, one line each: a suite, case or
/// `protocol` param the catalogue does not know, or a side other than the catalogue's.
pub fn unknown(file: &ResultFile) -> Vec<String> {
    let Some(suite) = Suite::named(&file.suite) else {
        return vec![format!("unknown suite `{}`", file.suite)];
    };
    let mut wrong = Vec::new();
    for case in &file.cases {
        let (group, variant) = (case.group.as_str(), case.variant.as_str());
        if !known(suite, group, variant) {
            wrong.push(format!("unknown case {group} {variant}"));
        }
        if let Some(protocol) = case.params.get("protocol")
            && protocol.parse::<Protocol>().is_err()
        {
            wrong.push(format!(
                "{group} {variant}: protocol `{protocol}` is none of {:?}",
                Protocol::ALL.map(Protocol::as_str)
            ));
        }
        let side = side(group, variant);
        if case.side != side {
            wrong.push(format!(
                "{group} {variant}: side {:?}, the catalogue says {side:?}",
                case.side
            ));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::unknown;
    use crate::{
        cases::Suite,
        results::{ResultFile, default_dir},
    };

    /// Every committed result file names only cases, protocols and sides the catalogue
    /// knows: a suite that writes a name nobody else knows fails here, not in the report.
    #[test]
    fn every_committed_result_names_only_what_the_catalogue_knows() {
        let mut wrong = Vec::new();
        for suite in Suite::ALL {
            let path = default_dir().join(format!("{}.json", suite.as_str()));
            if !path.is_file() {
                continue;
            }
            let file = ResultFile::read(&path).expect("a result file");
            for line in unknown(&file) {
                // A line per distinct problem: the rounds of a case repeat it.
                let line = format!("results/{}.json: {line}", suite.as_str());
                if !wrong.contains(&line) {
                    wrong.push(line);
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} case(s) the catalogue does not know (rerun the suite after renaming):\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn a_case_of_another_spelling_or_side_is_named() {
        use crate::results::{Case, Side};
        let mut file = ResultFile::new("load", "test");
        file.cases = vec![
            Case::new("load/ingress", "grpc_unary", Some(Side::Optimized))
                .param("protocol", "grpc-unary"),
            Case::new("load/ingress", "grpcunary", None),
            Case::new("load/queue", "nats", Some(Side::Optimized)),
            Case::new("peers/http1", "ours", None),
            Case::new("load/queue", "nats_r3", None),
            Case::new("load/queue", "nats_r3", Some(Side::Optimized)),
        ];
        let wrong = unknown(&file);
        assert_eq!(wrong.len(), 5, "{wrong:#?}");
        assert!(wrong[0].contains("protocol `grpc-unary`"), "{}", wrong[0]);
        assert!(
            wrong[1].contains("unknown case load/ingress grpcunary"),
            "{}",
            wrong[1]
        );
        assert!(wrong[2].contains("the catalogue says None"), "{}", wrong[2]);
        assert!(
            wrong[3].contains("unknown case peers/http1 ours"),
            "{}",
            wrong[3]
        );
        // The replicated queue is a case of the queue pair, on neither side.
        assert!(
            wrong[4].contains("load/queue nats_r3: side Some(Optimized)"),
            "{}",
            wrong[4]
        );
    }

    /// The shapes of a stream message are criterion cases of their group, and no other.
    #[test]
    fn the_stream_shapes_are_criterion_cases_of_their_group() {
        use super::known;
        use crate::cases::{
            group::{self, CLIENT_STREAM_SHAPE, CODEC_STREAM_SHAPE},
            shape,
        };
        for shape in [shape::DATA, shape::UNKNOWN_FIELDS] {
            for group in [CODEC_STREAM_SHAPE, CLIENT_STREAM_SHAPE] {
                assert!(known(Suite::Criterion, group, shape), "{group} {shape}");
            }
            assert!(
                !known(Suite::Callgrind, CODEC_STREAM_SHAPE, shape),
                "{shape}"
            );
            assert!(
                !known(Suite::Criterion, group::CODEC_DECODE, shape),
                "{shape}"
            );
        }
        assert!(!known(Suite::Criterion, CODEC_STREAM_SHAPE, "protobuf"));
    }

    /// The replicated NATS queue is measured by the load suite only: the soak runs the
    /// queue on one server.
    #[test]
    fn the_replicated_queue_is_a_load_case_and_no_soak_case() {
        use super::known;
        assert!(known(Suite::Load, "load/queue", "nats_r3"));
        assert!(known(Suite::Load, "load/queue", "nats"));
        assert!(!known(Suite::Soak, "soak/delivery", "nats_r3"));
        assert!(!known(Suite::Load, "load/client", "nats_r3"));
    }
}
