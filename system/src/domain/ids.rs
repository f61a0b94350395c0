//! Message ids: random (version 4) UUIDs written into a stack buffer, so that making one
//! never touches the heap.
//!
//! Two sources, one per side of the queue A/B pair: [`IdSource::Os`] asks the kernel for
//! every id (one `getrandom` system call each, as a default UUID library does), and
//! [`IdSource::Fast`] draws from a per-thread generator seeded once from the kernel, so an id
//! costs a few nanoseconds. Ids only need to be unique, not secret; 122 random bits from a
//! well-seeded generator make a collision practically impossible.

use std::{cell::RefCell, fmt};

use rand::{Rng, SeedableRng, TryRngCore, rngs::OsRng, rngs::SmallRng};
use uuid::Builder;

/// Where the random bits of an id come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSource {
    /// The kernel, for every id (the baseline).
    Os,
    /// A per-thread generator seeded once from the kernel.
    Fast,
}

/// A hyphenated lower-case UUID held inline (36 ASCII bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MessageId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl MessageId {
    /// A new random id.
    pub(crate) fn generate(source: IdSource) -> MessageId {
        let mut bytes = [0u8; 16];
        match source {
            IdSource::Os => {
                if OsRng.try_fill_bytes(&mut bytes).is_err() {
                    // The kernel refused (practically never); fall back rather than fail a request.
                    fill_fast(&mut bytes);
                }
            }
            IdSource::Fast => fill_fast(&mut bytes),
        }
        let uuid = Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        MessageId(text)
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        // `encode_lower` writes only ASCII hex digits and hyphens.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.as_str())
    }
}

fn fill_fast(bytes: &mut [u8; 16]) {
    thread_local! {
        static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
    }
    RNG.with(|rng| rng.borrow_mut().fill(bytes));
}
