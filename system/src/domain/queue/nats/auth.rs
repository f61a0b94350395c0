//! How the processor proves to NATS who it is: a credentials file (`NATS_CREDS_FILE`: a
//! user JWT and the NKEY seed that signs the server's challenge), a user and a password
//! (`NATS_USER`, `NATS_PASSWORD_FILE`), a token (`NATS_TOKEN_FILE`), or the userinfo of
//! `NATS_URL` (`nats://user:password@host`, `nats://token@host`). At most one of them.
//!
//! Secrets come from files (a value on the command line would show in the process list),
//! are read once at start-up and kept as [`Secret`]s, whose `Debug` hides them; an error
//! names the setting and never holds a secret. The userinfo is taken out of the URLs
//! before the client sees them, so that no address it logs holds it; wherever the system
//! shows `NATS_URL` itself, [`crate::domain::redact`] hides it.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

use crate::domain::secret::{MAX_TOKEN_BYTES, Secret, flag, read_secret_file};

/// Largest credentials file read, in bytes (one holds a JWT and a seed: about a kilobyte).
const MAX_CREDS_BYTES: usize = 64 * 1024;

const CREDS_FILE: &str = "NATS_CREDS_FILE";
const USER: &str = "NATS_USER";
const PASSWORD_FILE: &str = "NATS_PASSWORD_FILE";
const TOKEN_FILE: &str = "NATS_TOKEN_FILE";
const URL: &str = "NATS_URL";

/// How the processor authenticates to NATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// Not at all (the server wants nothing).
    #[default]
    None,
    /// The text of a credentials file: a user JWT and its NKEY seed.
    Credentials(Secret),
    /// A user and a password.
    UserPassword {
        /// The user's name.
        user: String,
        /// Its password.
        password: Secret,
    },
    /// A token.
    Token(Secret),
}

/// The credentials settings as they were given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsAuthSettings<'a> {
    /// `NATS_URL`, whose servers may carry userinfo.
    pub url: &'a str,
    /// `NATS_CREDS_FILE`.
    pub creds_file: Option<&'a Path>,
    /// `NATS_USER`.
    pub user: Option<&'a str>,
    /// `NATS_PASSWORD_FILE`.
    pub password_file: Option<&'a Path>,
    /// `NATS_TOKEN_FILE`.
    pub token_file: Option<&'a Path>,
}

/// Why the NATS credentials settings cannot be used; the message names the settings and
/// holds no secret.
#[derive(Debug, thiserror::Error)]
pub enum NatsAuthError {
    /// Two ways to authenticate are given.
    #[error("{} and {} are both set: give NATS one way to authenticate", form(.0), form(.1))]
    Both(&'static str, &'static str),
    /// `NATS_USER` without `NATS_PASSWORD_FILE`, or the other way round.
    #[error("{} is set without {}: give both", form(.0), form(.1))]
    Half(&'static str, &'static str),
    /// `NATS_USER` is empty.
    #[error("{USER} ({}) is empty", flag(USER))]
    EmptyUser,
    /// A file cannot be read.
    #[error("{setting} ({}): cannot read {}: {source}", flag(setting), path.display())]
    Unreadable {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no secret, or not one that can be used.
    #[error("{setting} ({}): {}: {problem}", flag(setting), path.display())]
    Unusable {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The userinfo of `NATS_URL` cannot be used.
    #[error("{URL} ({}): {}", flag(URL), .0)]
    Userinfo(&'static str),
}

/// A setting as a message names it: `NATS_USER (--nats-user)`; `NATS_URL` as the userinfo
/// it carries.
fn form(setting: &str) -> String {
    if setting == URL {
        format!("the userinfo of {URL} ({})", flag(URL))
    } else {
        format!("{setting} ({})", flag(setting))
    }
}

impl NatsAuth {
    /// Reads and checks the credentials `settings` give (each file once); `None` when they
    /// give none.
    pub fn load(settings: &NatsAuthSettings<'_>) -> Result<NatsAuth, NatsAuthError> {
        let in_url = in_url(settings.url).map_err(NatsAuthError::Userinfo)?;
        let user_given = settings.user.is_some() || settings.password_file.is_some();
        let given: Vec<&'static str> = [
            (CREDS_FILE, settings.creds_file.is_some()),
            (USER, user_given),
            (TOKEN_FILE, settings.token_file.is_some()),
            (URL, in_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(setting, set)| set.then_some(setting))
        .collect();
        if let [first, second, ..] = given[..] {
            return Err(NatsAuthError::Both(first, second));
        }
        if let Some(path) = settings.creds_file {
            return credentials(path);
        }
        if let Some(path) = settings.token_file {
            return Ok(NatsAuth::Token(secret(TOKEN_FILE, path, MAX_TOKEN_BYTES)?));
        }
        match (settings.user, settings.password_file) {
            (Some(""), _) => Err(NatsAuthError::EmptyUser),
            (Some(user), Some(path)) => Ok(NatsAuth::UserPassword {
                user: user.to_owned(),
                password: secret(PASSWORD_FILE, path, MAX_TOKEN_BYTES)?,
            }),
            (Some(_), None) => Err(NatsAuthError::Half(USER, PASSWORD_FILE)),
            (None, Some(_)) => Err(NatsAuthError::Half(PASSWORD_FILE, USER)),
            (None, None) => Ok(in_url.unwrap_or_default()),
        }
    }

    /// `options` authenticating this way.
    pub(super) fn apply(&self, options: ConnectOptions) -> std::io::Result<ConnectOptions> {
        Ok(match self {
            NatsAuth::None => options,
            NatsAuth::Credentials(creds) => options.credentials(creds.expose())?,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            NatsAuth::Token(token) => options.token(token.expose().to_owned()),
        })
    }
}

/// The credentials file at `path`, checked: the client can read a JWT and a seed from it.
fn credentials(path: &Path) -> Result<NatsAuth, NatsAuthError> {
    let creds = secret(CREDS_FILE, path, MAX_CREDS_BYTES)?;
    // The client's reader says what is missing (the JWT, the seed), never what it read.
    ConnectOptions::new()
        .credentials(creds.expose())
        .map_err(|err| NatsAuthError::Unusable {
            setting: CREDS_FILE,
            path: path.to_owned(),
            problem: format!("not a NATS credentials file (a user JWT and its seed): {err}"),
        })?;
    Ok(NatsAuth::Credentials(creds))
}

/// The secret in the file at `path` (named by `setting`), without its trailing line
/// endings.
fn secret(setting: &'static str, path: &Path, limit: usize) -> Result<Secret, NatsAuthError> {
    let unusable = |problem: &str| NatsAuthError::Unusable {
        setting,
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let bytes = read_secret_file(path, limit).map_err(|source| NatsAuthError::Unreadable {
        setting,
        path: path.to_owned(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(unusable("the file is empty"));
    }
    if bytes.len() > limit {
        return Err(unusable(&format!("longer than {limit} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| unusable("not UTF-8 text"))?;
    Ok(Secret::new(text))
}

/// The credentials in the userinfo of the servers of `url` (`user:password@` or
/// `token@`, percent-encoded), which every server that carries one must carry alike.
pub(super) fn in_url(url: &str) -> Result<Option<NatsAuth>, &'static str> {
    let mut found: Option<&str> = None;
    for server in url.split(',').map(str::trim) {
        let Some(userinfo) = split_userinfo(server).1 else {
            continue;
        };
        match found {
            Some(other) if other != userinfo => {
                return Err("its servers carry different users; give them one");
            }
            _ => found = Some(userinfo),
        }
    }
    let Some(userinfo) = found else {
        return Ok(None);
    };
    let decode = |part: &str| percent_decoded(part).ok_or("its userinfo is not valid UTF-8");
    let auth = match userinfo.split_once(':') {
        Some((user, password)) => NatsAuth::UserPassword {
            user: decode(user)?,
            password: Secret::new(decode(password)?),
        },
        None => NatsAuth::Token(Secret::new(decode(userinfo)?)),
    };
    match &auth {
        NatsAuth::UserPassword { user, .. } if user.is_empty() => {
            Err("the user before `:` is empty")
        }
        NatsAuth::Token(token) if token.expose().is_empty() => Err("the token before `@` is empty"),
        _ => Ok(Some(auth)),
    }
}

/// `server` (`scheme://[userinfo@]host[:port]`) without its userinfo, and the userinfo.
pub(super) fn split_userinfo(server: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = server.split_once("://") else {
        return (server.to_owned(), None);
    };
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    match authority.rfind('@') {
        Some(at) => (format!("{scheme}://{}", &rest[at + 1..]), Some(&rest[..at])),
        None => (server.to_owned(), None),
    }
}

/// `text` with its `%XX` escapes decoded; `None` when that is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_of_each_server() {
        assert_eq!(
            split_userinfo("nats://u:p@h:4222"),
            ("nats://h:4222".to_owned(), Some("u:p"))
        );
        assert_eq!(
            split_userinfo("tls://t@h:4222"),
            ("tls://h:4222".to_owned(), Some("t"))
        );
        assert_eq!(
            split_userinfo("nats://h:4222"),
            ("nats://h:4222".to_owned(), None)
        );
    }

    #[test]
    fn the_userinfo_of_the_url_is_a_user_and_password_or_a_token() {
        let user = in_url("nats://ingest:p%40ss@a:4222,nats://b:4222").unwrap();
        assert_eq!(
            user,
            Some(NatsAuth::UserPassword {
                user: "ingest".to_owned(),
                password: Secret::new("p@ss"),
            })
        );
        let token = in_url("nats://s3cr3t@a:4222").unwrap();
        assert_eq!(token, Some(NatsAuth::Token(Secret::new("s3cr3t"))));
        assert_eq!(in_url("nats://a:4222,nats://b:4222").unwrap(), None);
        for bad in [
            "nats://u:p@a:4222,nats://v:q@b:4222",
            "nats://:p@a:4222",
            "nats://%FF@a:4222",
        ] {
            assert!(in_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_never_shows_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "SUAsecret-seed-Tq9\n").unwrap();
        let err = NatsAuth::load(&NatsAuthSettings {
            creds_file: Some(&path),
            ..NatsAuthSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("NATS_CREDS_FILE"), "{err}");
        assert!(!err.contains("secret-seed"), "{err}");
        let both = NatsAuth::load(&NatsAuthSettings {
            url: "nats://u:url-secret@h:4222",
            token_file: Some(&path),
            ..NatsAuthSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("NATS_URL") && both.contains("NATS_TOKEN_FILE"),
            "{both}"
        );
        assert!(!both.contains("url-secret"), "{both}");
    }
}
