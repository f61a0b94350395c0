//! Access control: optional bearer tokens, one per kind of access ([`Scope`]).
//!
//! - `INGEST_TOKEN`: the front doors' ingest (`POST /api/v1/ingest`, `GET /api/v1/trace`,
//!   gRPC `Ingest` and `IngestStream`);
//! - `PROCESSOR_TOKEN`: the processor's `/enqueue` and `/enqueue/batch`; the front doors'
//!   processor client sends it;
//! - `DEBUG_TOKEN`: `/debug/*` on every port that serves it.
//!
//! A token left unset leaves its routes open, and then nothing is added to a request's
//! path. A request without the right token is answered without its body being kept: 401
//! with a `WWW-Authenticate` challenge and the JSON error of `crate::domain::http_error`, or
//! gRPC `UNAUTHENTICATED`, once the body was thrown away (`serve::body::linger`). Health,
//! readiness, metrics and status stay open.
//!
//! A token never shows: [`Secret`]'s `Debug` is a placeholder, no error message holds a
//! token (neither the right one nor the one a client sent), and tokens are compared in
//! constant time ([`constant_time_eq`]). The processor's credentials for NATS are
//! [`Secret`]s too, loaded with the tokens ([`Tokens::nats`], see `domain/queue/nats/auth.rs`).

use std::{
    io,
    path::{Path, PathBuf},
};

use axum::{
    Router,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tonic::Status;

use crate::{
    domain::http_error::ApiError,
    domain::queue::{NatsAuth, NatsAuthError},
    serve::clients::Peer,
    serve::refusals::Refusal,
};

mod named;

pub use self::named::{ClientToken, IdScope, MAX_NAME_BYTES, MAX_TOKENS, load_clients};
pub use crate::domain::secret::{MAX_TOKEN_BYTES, Secret, constant_time_eq};
use crate::domain::secret::{flag, read_secret_file};

/// What a token gives access to, and the settings that give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Ingest through a front door (`INGEST_TOKEN`).
    Ingest,
    /// The processor's `/enqueue` routes (`PROCESSOR_TOKEN`).
    Processor,
    /// `/debug/*` (`DEBUG_TOKEN`).
    Debug,
}

impl Scope {
    /// The setting (environment variable) that holds the token.
    pub fn setting(self) -> &'static str {
        match self {
            Scope::Ingest => "INGEST_TOKEN",
            Scope::Processor => "PROCESSOR_TOKEN",
            Scope::Debug => "DEBUG_TOKEN",
        }
    }

    /// The setting that names a file holding the token.
    pub(crate) fn file_setting(self) -> &'static str {
        match self {
            Scope::Ingest => "INGEST_TOKEN_FILE",
            Scope::Processor => "PROCESSOR_TOKEN_FILE",
            Scope::Debug => "DEBUG_TOKEN_FILE",
        }
    }
}

/// The secrets of a process, read once at start-up: its tokens, each `None` when unset, and
/// the processor's credentials for NATS.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// `INGEST_TOKEN`, or those of `INGEST_TOKEN_FILE` (none: ingest is open).
    pub ingest: Vec<ClientToken>,
    /// `PROCESSOR_TOKEN`.
    pub processor: Option<Secret>,
    /// `DEBUG_TOKEN`.
    pub debug: Option<Secret>,
    /// `NATS_CREDS_FILE`, `NATS_USER` with `NATS_PASSWORD_FILE`, `NATS_TOKEN_FILE`, or the
    /// userinfo of `NATS_URL`.
    pub nats: NatsAuth,
}

/// Why a token setting cannot be used; the message names the setting and never holds the
/// token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is given both as a value and as a file.
    #[error(
        "{} ({}) and {} ({}) are both set: give the token one way",
        .0.setting(), flag(.0.setting()), .0.file_setting(), flag(.0.file_setting())
    )]
    Both(Scope),
    /// The token is not one a client could send.
    #[error("{setting} ({}){}: {problem}", flag(setting), in_file(path.as_deref()))]
    Invalid {
        /// The setting that gave it.
        setting: &'static str,
        /// The file it was read from, if any.
        path: Option<PathBuf>,
        /// What is wrong with it.
        problem: TokenProblem,
    },
    /// The token file cannot be read.
    #[error("{setting} ({}): cannot read {}: {source}", flag(setting), path.display())]
    Unreadable {
        /// The file setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The NATS credentials cannot be used.
    #[error(transparent)]
    Nats(#[from] NatsAuthError),
}

/// What is wrong with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// Nothing in it.
    #[error("the token is empty (leave the setting unset for no token)")]
    Empty,
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// A space, a control character or a byte outside ASCII.
    #[error("a token may hold visible ASCII characters only (no spaces or control characters)")]
    NotVisibleAscii,
    /// A line of a file of tokens is neither a token nor a name and a token.
    #[error(
        "line {line}: a line holds a token, or a name and a token separated by spaces \
         (visible ASCII characters only)"
    )]
    BadLine {
        /// The line, from 1.
        line: usize,
    },
    /// A token's name is not one.
    #[error(
        "line {line}: a name is 1 to {} letters, digits, `.`, `_` or `-`",
        named::MAX_NAME_BYTES
    )]
    BadName {
        /// The line, from 1.
        line: usize,
    },
    /// A token given twice.
    #[error("line {line}: the token of an earlier line again")]
    Repeated {
        /// The line, from 1.
        line: usize,
    },
    /// More tokens than a file may hold.
    #[error("more than {} tokens", named::MAX_TOKENS)]
    TooMany,
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|path| format!(" in {}", path.display()))
        .unwrap_or_default()
}

/// Whether `token` is one a client can send in a header: 1 to [`MAX_TOKEN_BYTES`] visible
/// ASCII characters.
pub fn check(token: &[u8]) -> Result<(), TokenProblem> {
    if token.is_empty() {
        Err(TokenProblem::Empty)
    } else if token.len() > MAX_TOKEN_BYTES {
        Err(TokenProblem::TooLong)
    } else if !token.iter().all(u8::is_ascii_graphic) {
        Err(TokenProblem::NotVisibleAscii)
    } else {
        Ok(())
    }
}

/// The token of `scope`, from its value or from its file (read whole, without its
/// trailing line ending), checked; `None` when neither is given.
pub fn load(
    scope: Scope,
    value: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, TokenError> {
    match (value, file) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(TokenError::Both(scope)),
        (Some(value), None) => {
            check(value.expose().as_bytes()).map_err(|problem| TokenError::Invalid {
                setting: scope.setting(),
                path: None,
                problem,
            })?;
            Ok(Some(value.clone()))
        }
        (None, Some(path)) => {
            let setting = scope.file_setting();
            let bytes = read_secret_file(path, MAX_TOKEN_BYTES).map_err(|source| {
                TokenError::Unreadable {
                    setting,
                    path: path.to_owned(),
                    source,
                }
            })?;
            let invalid = |problem| TokenError::Invalid {
                setting,
                path: Some(path.to_owned()),
                problem,
            };
            check(&bytes).map_err(invalid)?;
            let token =
                String::from_utf8(bytes).map_err(|_| invalid(TokenProblem::NotVisibleAscii))?;
            Ok(Some(Secret::new(token)))
        }
    }
}

/// The token check of one kind of route on one server: open when no token is set. A
/// request passes with any of its tokens, and is told the namespace of the one it carried.
#[derive(Debug, Clone)]
pub struct Guard {
    tokens: Vec<ClientToken>,
    scope: Scope,
    /// The realm of the `WWW-Authenticate` challenge: the role that answers.
    realm: &'static str,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    scope: Scope,
    realm: &'static str,
    /// A token was sent, and it is not the right one.
    invalid: bool,
}

impl Guard {
    /// A guard wanting `token` (none: open) for `scope`, answering for the role `realm`.
    pub fn new(scope: Scope, realm: &'static str, token: Option<Secret>) -> Guard {
        Guard::any_of(
            scope,
            realm,
            token.map(ClientToken::unnamed).into_iter().collect(),
        )
    }

    /// A guard wanting any of `tokens` (none: open) for `scope`, answering for `realm`.
    pub(crate) fn any_of(scope: Scope, realm: &'static str, tokens: Vec<ClientToken>) -> Guard {
        Guard {
            tokens,
            scope,
            realm,
        }
    }

    /// Whether no token is wanted.
    pub(crate) fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `headers` carry one of the tokens in `Authorization: Bearer <token>` (the
    /// scheme's name in any case); the namespace of the one they carry, when it has a name.
    /// Every token is compared, in constant time, whichever matches.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<IdScope>, Denied> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let denied = |invalid| Denied {
            scope: self.scope,
            realm: self.realm,
            invalid,
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let first = values.next();
        if values.next().is_some() {
            // Which one would count is ambiguous: refuse rather than pick.
            return Err(denied(true));
        }
        let presented = first
            .and_then(|value| bearer_token(value.as_bytes()))
            .ok_or_else(|| denied(false))?;
        let mut carried = None;
        for token in &self.tokens {
            if token.secret.matches(presented) && carried.is_none() {
                carried = Some(token);
            }
        }
        match carried {
            Some(token) => Ok(token.name.clone()),
            None => Err(denied(true)),
        }
    }

    /// [`Guard::check`] for a gRPC call, whose metadata are its HTTP/2 headers.
    pub(crate) fn check_grpc(&self, headers: &HeaderMap) -> Result<Option<IdScope>, Status> {
        self.check(headers).map_err(Denied::into_status)
    }

    /// `router` with this guard in front of each of its routes (its fallback excepted);
    /// `router` unchanged when no token is wanted.
    pub(crate) fn protect<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if self.is_open() {
            return router;
        }
        router.route_layer(axum::middleware::from_fn_with_state(self.clone(), require))
    }
}

async fn require(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard.check(request.headers()) {
        Ok(scope) => {
            if let Some(scope) = scope {
                request.extensions_mut().insert(scope);
            }
            next.run(request).await
        }
        Err(denied) => {
            if let Some(peer) = Peer::of(request.extensions()) {
                peer.refuse(Refusal::Unauthenticated);
            }
            let (parts, body) = request.into_parts();
            crate::serve::body::linger(&parts.headers, body).await;
            denied.into_response()
        }
    }
}

/// The token of an `Authorization` value of the `Bearer` scheme (RFC 6750), or `None` for
/// another scheme or no token.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

impl Denied {
    /// What the client is told.
    pub fn message(&self) -> String {
        let setting = self.scope.setting();
        if self.invalid {
            format!("invalid bearer token ({setting})")
        } else {
            // Lower case: a header name in HTTP/1.1 and a metadata key in gRPC alike.
            format!("missing bearer token: send `authorization: Bearer <token>` ({setting})")
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750, section 3).
    pub fn challenge(&self) -> String {
        if self.invalid {
            format!(r#"Bearer realm="{}", error="invalid_token""#, self.realm)
        } else {
            format!(r#"Bearer realm="{}""#, self.realm)
        }
    }

    /// The gRPC status: `UNAUTHENTICATED`, with the same message.
    pub(crate) fn into_status(self) -> Status {
        Status::unauthenticated(self.message())
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, self.message()).into_response();
        if let Ok(challenge) = HeaderValue::try_from(self.challenge()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality_of_bytes() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"token-1", b"token-1"));
        for (expected, presented) in [
            (&b"token-1"[..], &b"token-2"[..]),
            (b"token-1", b"Token-1"),
            (b"token-1", b"tokEn-1"),
            // A prefix, an extension, and bytes past the end that the padding would match.
            (b"token-1", b"token-"),
            (b"token-1", b"token-11"),
            (b"token\0", b"token"),
            (b"token", b"token\0"),
            (b"", b"x"),
            (b"x", b""),
        ] {
            assert!(
                !constant_time_eq(expected, presented),
                "{expected:?} {presented:?}"
            );
        }
    }

    #[test]
    fn constant_time_eq_folds_the_length_difference_in() {
        // Lengths whose difference a sum of byte differences could cancel.
        assert!(!constant_time_eq(&[0; 256], &[0; 512]));
        assert!(!constant_time_eq(&[1; 3], &[1; 2]));
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret = Secret::new("hunter2-Xy");
        let shown = format!("{secret:?} {:?} {secret:#?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        let header = secret.authorization().unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("hunter2"));
    }

    #[test]
    fn a_bearer_token_is_read_from_the_scheme_in_any_case() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"abc"), None);
    }

    #[test]
    fn only_visible_ascii_tokens_are_accepted() {
        assert_eq!(check(b"a-Z_0.9~+/="), Ok(()));
        assert_eq!(check(b""), Err(TokenProblem::Empty));
        assert_eq!(check(b"a b"), Err(TokenProblem::NotVisibleAscii));
        assert_eq!(check(b"a\tb"), Err(TokenProblem::NotVisibleAscii));
        assert_eq!(check("tök".as_bytes()), Err(TokenProblem::NotVisibleAscii));
        assert_eq!(check(&[b'a'; MAX_TOKEN_BYTES]), Ok(()));
        assert_eq!(
            check(&[b'a'; MAX_TOKEN_BYTES + 1]),
            Err(TokenProblem::TooLong)
        );
    }

    #[test]
    fn a_token_file_loses_its_trailing_line_endings_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for (content, token) in [
            ("s3cr3t-Vq\n", "s3cr3t-Vq"),
            ("s3cr3t-Vq\r\n", "s3cr3t-Vq"),
            ("s3cr3t-Vq", "s3cr3t-Vq"),
            ("s3cr3t-Vq\n\n", "s3cr3t-Vq"),
        ] {
            std::fs::write(&path, content).unwrap();
            let loaded = load(Scope::Ingest, None, Some(&path)).unwrap().unwrap();
            assert_eq!(loaded.expose(), token, "{content:?}");
        }
        std::fs::write(&path, " s3cr3t-Vq\n").unwrap();
        let err = load(Scope::Ingest, None, Some(&path)).unwrap_err();
        assert!(err.to_string().contains("INGEST_TOKEN_FILE"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
