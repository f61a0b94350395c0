//! The open/closed state shared by the in-memory queues, and the wait of an idle consumer.
//!
//! The invariant: a consumer may conclude "closed and empty" only when no publisher is
//! between its closed-check and its push. Publishers therefore register themselves
//! ([`Gate::enter`]) for the few instructions of a publish; the state word counts them in
//! its upper bits and keeps the closed flag in bit 0, so the check and the registration are
//! one atomic step and an accepted message can never be stranded behind a closed queue.

use std::{
    pin::pin,
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::sync::Notify;

use super::PublishError;

const CLOSED: usize = 1;
const PUBLISHER: usize = 2;

#[derive(Debug, Default)]
pub(super) struct Gate {
    state: AtomicUsize,
    notify: Notify,
}

/// Held by a publisher for the duration of one publish.
pub(super) struct Entered<'a>(&'a Gate);

impl Gate {
    /// Registers a publisher, or refuses when the queue is closed.
    pub(super) fn enter(&self) -> Result<Entered<'_>, PublishError> {
        let previous = self.state.fetch_add(PUBLISHER, Ordering::SeqCst);
        if previous & CLOSED != 0 {
            self.leave();
            return Err(PublishError::Closed);
        }
        Ok(Entered(self))
    }

    fn leave(&self) {
        let previous = self.state.fetch_sub(PUBLISHER, Ordering::SeqCst);
        if previous == CLOSED | PUBLISHER {
            // The last publisher left a closed queue: idle consumers may now finish.
            self.notify.notify_waiters();
        }
    }

    pub(super) fn close(&self) {
        let previous = self.state.fetch_or(CLOSED, Ordering::SeqCst);
        if previous & !CLOSED == 0 {
            self.notify.notify_waiters();
        }
    }

    /// Closed, and no publish is under way: nothing more can arrive.
    fn is_drained(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CLOSED
    }

    /// Wakes one idle consumer after a push.
    pub(super) fn wake_one(&self) {
        self.notify.notify_one();
    }

    /// Takes the next item with `pop`, waiting while there is none and more may come.
    pub(super) async fn wait_for<T>(&self, mut pop: impl FnMut() -> Option<T>) -> Option<T> {
        if let Some(item) = pop() {
            return Some(item);
        }
        loop {
            let mut notified = pin!(self.notify.notified());
            // Register before the re-check so that a push or close in between still wakes us.
            notified.as_mut().enable();
            if let Some(item) = pop() {
                return Some(item);
            }
            if self.is_drained() {
                return pop();
            }
            notified.await;
            if let Some(item) = pop() {
                // Several items may have arrived for one wake-up; pass the baton on.
                self.wake_one();
                return Some(item);
            }
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}
