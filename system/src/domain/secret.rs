//! Secrets: bearer tokens and credentials, kept out of logs ([`Secret`] has no `Display` and
//! a placeholder `Debug`), compared in constant time, and read from files without reading
//! more than a secret can hold.

use std::{
    fmt,
    fs::File,
    io::{self, Read},
    path::Path,
    sync::Arc,
};

use http::HeaderValue;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// A secret: a bearer token, or a credential for NATS (a password, a token, a credentials
/// file). Its `Debug` prints a fixed placeholder, and it has no `Display`, so it cannot end
/// up in a log line by accident. Cheap to clone.
#[derive(Clone)]
pub struct Secret(Arc<Inner>);

struct Inner {
    token: Box<str>,
    /// `Bearer <token>`, marked sensitive (HTTP/2 then never indexes it), or `None` when
    /// the token cannot be a header value (only a token that [`check`] refuses).
    header: Option<HeaderValue>,
}

impl Secret {
    /// Wraps `token`. Settings are checked when they are loaded (`serve::auth::load`); a token that
    /// could not be sent in a header is never matched by anything a client sends.
    pub fn new(token: impl Into<String>) -> Secret {
        let token = token.into().into_boxed_str();
        let header = HeaderValue::try_from(format!("Bearer {token}"))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Secret(Arc::new(Inner { token, header }))
    }

    /// The token itself, to send it or compare it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0.token
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.token.as_bytes(), presented)
    }

    /// The `Authorization` header value that carries this token (`Bearer <token>`, marked
    /// sensitive), or `None` for a token no header can carry.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.0.header.as_ref()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Equal secrets, compared in constant time.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(self.0.token.as_bytes(), other.0.token.as_bytes())
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(token: String) -> Secret {
        Secret::new(token)
    }
}

impl From<&str> for Secret {
    fn from(token: &str) -> Secret {
        Secret::new(token)
    }
}

/// Whether `expected` and `presented` are equal, in a time that does not depend on where
/// they first differ: every byte of `expected` is compared whatever `presented` holds, the
/// differences are folded together with the difference of the lengths, and the result is
/// read once at the end. So the time tells nothing about how much of a guess was right.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (i, &byte) in expected.iter().enumerate() {
        // Past the end of a shorter `presented` the lengths already differ; the byte it is
        // compared with there does not matter, only that the work is the same.
        let other = presented.get(i).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    // Keeps the compiler from turning the fold into a loop that stops early.
    std::hint::black_box(difference) == 0
}

/// The flag of the setting `env` (`INGEST_TOKEN` → `--ingest-token`).
pub(crate) fn flag(env: &str) -> String {
    format!("--{}", env.to_ascii_lowercase().replace('_', "-"))
}

/// The bytes of a file holding a secret, without its trailing line endings; at most a
/// little more than `limit` bytes are read, so a wrong path (a large file, a device) costs
/// nothing, and a secret over `limit` reads as too long.
pub(crate) fn read_secret_file(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit as u64 + 3)
        .read_to_end(&mut bytes)?;
    while let Some(b'\n' | b'\r') = bytes.last() {
        bytes.pop();
    }
    Ok(bytes)
}
