//! URLs as they may be shown. A URL's userinfo (`user:password@`, or a token before the
//! `@`) is a secret: `NATS_URL` may carry the broker's credentials, and `PROCESSOR_URL` may
//! carry anything its writer put there. Every URL the system shows (a log line, `/stats`,
//! `/api/v1/status`, `/ready`, an error message, a refused setting) goes through
//! [`userinfo`] first, which writes the userinfo as `***`: `nats://***@host:4222`.

use std::borrow::Cow;

/// What hides a URL's userinfo.
pub(crate) const HIDDEN: &str = "***";

/// `text` with the userinfo of every URL in it (`scheme://userinfo@host...`) written as
/// [`HIDDEN`]; `text` itself when it holds none. A list of URLs (`NATS_URL`) and a message
/// that quotes one are both covered.
pub(crate) fn userinfo(text: &str) -> Cow<'_, str> {
    let mut shown = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let authority_start = from + found + "://".len();
        let authority_len = text[authority_start..]
            .find(ends_authority)
            .unwrap_or(text.len() - authority_start);
        let authority = &text[authority_start..authority_start + authority_len];
        // The last `@` ends the userinfo: a password may hold one, a host cannot.
        if let Some(at) = authority.rfind('@') {
            shown.push_str(&text[copied..authority_start]);
            shown.push_str(HIDDEN);
            copied = authority_start + at;
        }
        from = authority_start + authority_len;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    shown.push_str(&text[copied..]);
    Cow::Owned(shown)
}

/// Where the authority of a URL ends: its path, query or fragment, the next URL of a list,
/// or the text around a quoted URL.
fn ends_authority(c: char) -> bool {
    matches!(c, '/' | '?' | '#' | ',' | '\'' | '"' | '`' | '<' | '>') || c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden_and_the_rest_kept() {
        for (text, shown) in [
            ("nats://user:pass@host:4222", "nats://***@host:4222"),
            ("nats://token@host:4222", "nats://***@host:4222"),
            ("http://u:p@127.0.0.1:8082/", "http://***@127.0.0.1:8082/"),
            ("http://u:p@h:1/health?x=a@b", "http://***@h:1/health?x=a@b"),
            // A password that holds an `@`, and one percent-encoded.
            ("nats://u:p@ss@host:4222", "nats://***@host:4222"),
            ("nats://u:p%40ss@host:4222", "nats://***@host:4222"),
            (
                "nats://a:1@n1:4222, nats://n2:4222,nats://b:2@n3:4222",
                "nats://***@n1:4222, nats://n2:4222,nats://***@n3:4222",
            ),
            (
                "cannot connect to NATS at nats://u:p@h:4222: refused",
                "cannot connect to NATS at nats://***@h:4222: refused",
            ),
            (
                "invalid value 'ftp://u:p@x' for '--url'",
                "invalid value 'ftp://***@x' for '--url'",
            ),
        ] {
            assert_eq!(userinfo(text), shown, "{text}");
        }
    }

    #[test]
    fn text_without_userinfo_is_borrowed_as_it_is() {
        for text in [
            "",
            "nats://host:4222",
            "http://127.0.0.1:8082/path@x",
            "a@b",
            "://",
        ] {
            assert!(
                matches!(userinfo(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }
}
