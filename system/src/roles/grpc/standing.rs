//! What a failed `IngestStream` tells its client, in the status's metadata (sent as
//! trailers), so that a program can resume exactly:
//!
//! - `ingest-accepted`: how many of the stream's messages were accepted (duplicates
//!   included);
//! - `ingest-resume-from`: the index (from 0, in the order sent) of the first message not
//!   accepted; every message before it was;
//! - `ingest-accepted-after`: messages at or after that index that were accepted all the
//!   same (a batch goes on after one refusal), as ranges such as `5-9,12`; absent when none;
//! - `ingest-uncertain`: messages whose fate is unknown (the hop to the processor failed
//!   after they were sent: no answer in time, a broken connection or an unreadable
//!   answer; or the processor's queue did not confirm them, outcome `UNCERTAIN`): they may
//!   have been accepted, so resend them under their own ids (the `id` field), which makes
//!   the resend safe; absent when none.
//!
//! Messages after the last one listed were not read by the server. The lists are bounded by
//! one hop batch (at most `HOP_BATCH` messages), and written as ranges.

use std::fmt::Write as _;

use tonic::{Status, metadata::MetadataMap};

/// The metadata key of the accepted count.
pub const ACCEPTED: &str = "ingest-accepted";
/// The metadata key of the index to resume from.
pub const RESUME_FROM: &str = "ingest-resume-from";
/// The metadata key of the messages accepted after the resume index.
pub const ACCEPTED_AFTER: &str = "ingest-accepted-after";
/// The metadata key of the messages whose fate is unknown.
pub const UNCERTAIN: &str = "ingest-uncertain";

/// Where a stream stands when it fails.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Standing {
    pub(super) accepted: u64,
    pub(super) resume_from: u64,
    pub(super) accepted_after: Vec<u64>,
    pub(super) uncertain: Vec<u64>,
}

impl Standing {
    /// `status` with the standing in its metadata and a summary in its message.
    pub(super) fn attach(&self, status: &Status) -> Status {
        let mut metadata = MetadataMap::new();
        let mut put = |key: &'static str, value: String| {
            if let Ok(value) = value.parse() {
                metadata.insert(key, value);
            }
        };
        put(ACCEPTED, self.accepted.to_string());
        put(RESUME_FROM, self.resume_from.to_string());
        if !self.accepted_after.is_empty() {
            put(ACCEPTED_AFTER, ranges(&self.accepted_after));
        }
        if !self.uncertain.is_empty() {
            put(UNCERTAIN, ranges(&self.uncertain));
        }
        let message = format!(
            "{} ({} messages of this stream were accepted; resume from message {})",
            status.message(),
            self.accepted,
            self.resume_from
        );
        Status::with_metadata(status.code(), message, metadata)
    }
}

/// Ascending indices as ranges: `[1, 2, 3, 7]` → `1-3,7`.
pub(super) fn ranges(indices: &[u64]) -> String {
    let mut text = String::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        if !text.is_empty() {
            text.push(',');
        }
        let _ = if start == end {
            write!(text, "{start}")
        } else {
            write!(text, "{start}-{end}")
        };
        i += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn indices_are_written_as_ranges() {
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
    }

    #[test]
    fn a_standing_goes_into_the_metadata_and_the_message() {
        let standing = Standing {
            accepted: 7,
            resume_from: 5,
            accepted_after: vec![6, 7],
            uncertain: vec![],
        };
        let status = standing.attach(&Status::unavailable("queue is full"));
        assert_eq!(status.code(), Code::Unavailable);
        let get = |key| status.metadata().get(key).map(|v| v.to_str().unwrap());
        assert_eq!(get(ACCEPTED), Some("7"));
        assert_eq!(get(RESUME_FROM), Some("5"));
        assert_eq!(get(ACCEPTED_AFTER), Some("6-7"));
        assert_eq!(get(UNCERTAIN), None);
        assert!(status.message().contains("resume from message 5"));
    }
}
