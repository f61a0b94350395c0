//! The readiness contract: a server logs `<role> listening on <addr>` once its port is
//! bound, and whoever started it reads the address back from that line. Both sides use
//! these functions, so the wording cannot drift apart.

use std::{fmt::Display, net::SocketAddr};

/// The words between a role and its address in a readiness line.
pub const READY_MARKER: &str = "listening on";

/// The line a server logs once `role` listens on `addr`.
pub fn ready_line(role: &str, addr: impl Display) -> String {
    format!("{role} {READY_MARKER} {addr}")
}

/// The address in a log line that holds `role`'s readiness line (a logger may put a time
/// and a level before it); `None` for any other line, including another role's.
pub fn parse_ready(line: &str, role: &str) -> Option<SocketAddr> {
    let marker = format!("{role} {READY_MARKER} ");
    let mut rest = line;
    while let Some(at) = rest.find(&marker) {
        // "grpc" must not match the end of another role's name ("xgrpc listening on").
        let before = &rest[..at];
        let whole_word = before.is_empty() || before.ends_with([' ', ':', '\t']);
        let after = &rest[at + marker.len()..];
        if whole_word {
            let word = after.split_whitespace().next()?;
            return word.trim_end_matches(',').parse().ok();
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{GATEWAY, GATEWAY_PLAIN, GRPC, GRPC_METRICS};

    #[test]
    fn a_formatted_line_parses_back_behind_a_log_prefix() {
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let line = format!(
            "2026-01-01T00:00:00Z  INFO system: {}",
            ready_line(GATEWAY, addr)
        );
        assert_eq!(parse_ready(&line, GATEWAY), Some(addr));
        assert_eq!(parse_ready(&line, GRPC), None);
        assert_eq!(parse_ready(&line, "way"), None);
    }

    #[test]
    fn roles_with_spaces_and_ipv6_addresses_parse() {
        let line = ready_line(GATEWAY_PLAIN, "[::1]:80");
        assert_eq!(parse_ready(&line, GATEWAY_PLAIN), "[::1]:80".parse().ok());
        assert_eq!(parse_ready(&line, GATEWAY), None);
        let line = ready_line(GRPC_METRICS, "127.0.0.3:9");
        assert_eq!(parse_ready(&line, GRPC), None);
        assert_eq!(parse_ready("grpc listening on soon", GRPC), None);
    }
}
