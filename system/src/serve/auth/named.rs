//! Ingest tokens, one per client or group of clients, each with the name of the namespace
//! its clients' message ids are kept in ([`IdScope`]): a message sent under an id is
//! answered as a duplicate only when the same id came under the same name within the
//! de-duplication window, so clients with different tokens cannot answer (or block) each
//! other's messages.
//!
//! `INGEST_TOKEN` is one token without a name; `INGEST_TOKEN_FILE` holds one token per
//! line, each alone or after a name and spaces (`sensors 5b6f...`). Several lines may
//! share a name: a client whose token is being replaced keeps its namespace. Tokens
//! without a name share one namespace. Blank lines and lines beginning with `#` are
//! skipped.

use std::{path::Path, sync::Arc};

use super::{Scope, Secret, TokenError, TokenProblem, check, read_secret_file};
use crate::domain::validate;

/// Longest name of a token.
pub const MAX_NAME_BYTES: usize = validate::MAX_SCOPE_BYTES;
/// Most tokens one file may hold.
pub const MAX_TOKENS: usize = 1024;

/// An ingest token and the namespace of its clients' ids.
#[derive(Debug, Clone)]
pub struct ClientToken {
    /// The namespace; `None`: the one shared by every token without a name.
    pub name: Option<IdScope>,
    /// The token.
    pub secret: Secret,
}

impl ClientToken {
    /// A token without a name.
    pub fn unnamed(secret: impl Into<Secret>) -> ClientToken {
        ClientToken {
            name: None,
            secret: secret.into(),
        }
    }

    /// A token whose clients' ids are kept under `name`.
    pub fn named(name: &str, secret: impl Into<Secret>) -> ClientToken {
        ClientToken {
            name: Some(IdScope(Arc::from(name))),
            secret: secret.into(),
        }
    }
}

/// The namespace of a client's message ids: the name of the token it came with. Cheap to
/// clone. Put in a request's extensions by the guard that let it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdScope(Arc<str>);

impl IdScope {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The ingest tokens: `INGEST_TOKEN`'s one, or those of `INGEST_TOKEN_FILE`; none when
/// neither is set.
pub fn load_clients(
    value: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Vec<ClientToken>, TokenError> {
    let scope = Scope::Ingest;
    match (value, file) {
        (None, None) => Ok(Vec::new()),
        (Some(_), Some(_)) => Err(TokenError::Both(scope)),
        (Some(value), None) => {
            let token = super::load(scope, Some(value), None)?;
            Ok(token.into_iter().map(ClientToken::unnamed).collect())
        }
        (None, Some(path)) => {
            let setting = scope.file_setting();
            let limit = MAX_TOKENS * (MAX_TOKEN_LINE + 1);
            let bytes = read_secret_file(path, limit).map_err(|source| TokenError::Unreadable {
                setting,
                path: path.to_owned(),
                source,
            })?;
            parse(&bytes).map_err(|problem| TokenError::Invalid {
                setting,
                path: Some(path.to_owned()),
                problem,
            })
        }
    }
}

/// Longest line of a token file: a name, a space and a token.
const MAX_TOKEN_LINE: usize = MAX_NAME_BYTES + 1 + super::MAX_TOKEN_BYTES;

/// The tokens of a file's `bytes`.
fn parse(bytes: &[u8]) -> Result<Vec<ClientToken>, TokenProblem> {
    let text = std::str::from_utf8(bytes).map_err(|_| TokenProblem::NotVisibleAscii)?;
    let mut tokens: Vec<ClientToken> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_number = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let token = match words.as_slice() {
            [token] => ClientToken::unnamed(*token),
            [name, token] if validate::is_valid_scope(name) => ClientToken::named(name, *token),
            [_, _] => return Err(TokenProblem::BadName { line: line_number }),
            _ => return Err(TokenProblem::BadLine { line: line_number }),
        };
        check(token.secret.expose().as_bytes()).map_err(|problem| match problem {
            TokenProblem::TooLong => TokenProblem::TooLong,
            _ => TokenProblem::BadLine { line: line_number },
        })?;
        if tokens.iter().any(|known| known.secret == token.secret) {
            return Err(TokenProblem::Repeated { line: line_number });
        }
        if tokens.len() == MAX_TOKENS {
            return Err(TokenProblem::TooMany);
        }
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err(TokenProblem::Empty);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &str) -> Result<Vec<(Option<String>, String)>, TokenProblem> {
        parse(bytes.as_bytes()).map(|tokens| {
            tokens
                .into_iter()
                .map(|t| {
                    (
                        t.name.map(|n| n.as_str().to_owned()),
                        t.secret.expose().to_owned(),
                    )
                })
                .collect()
        })
    }

    #[test]
    fn a_file_holds_one_token_per_line_each_with_or_without_a_name() {
        let file =
            "# ingest clients\nsensors s-1\n\nshop  \t sh-2\r\nsensors s-1-next\nbare-token\n";
        assert_eq!(
            names(file).unwrap(),
            [
                (Some("sensors".into()), "s-1".into()),
                (Some("shop".into()), "sh-2".into()),
                (Some("sensors".into()), "s-1-next".into()),
                (None, "bare-token".into()),
            ]
        );
        assert_eq!(names("s3cr3t\n\n").unwrap(), [(None, "s3cr3t".into())]);
    }

    #[test]
    fn a_bad_line_is_refused_by_its_number() {
        assert_eq!(names("a b c"), Err(TokenProblem::BadLine { line: 1 }));
        assert_eq!(
            names("ok\nn@me tok"),
            Err(TokenProblem::BadName { line: 2 })
        );
        assert_eq!(names("na/me tok"), Err(TokenProblem::BadName { line: 1 }));
        assert_eq!(names("a t\nb t"), Err(TokenProblem::Repeated { line: 2 }));
        assert_eq!(names("\n# nothing\n"), Err(TokenProblem::Empty));
        assert_eq!(
            names("name tok\u{7}en"),
            Err(TokenProblem::BadLine { line: 1 })
        );
    }
}
