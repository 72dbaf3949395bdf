//! The stores of misses still on their way: counted, so that there are never too many and so
//! that [`Cachalot::settle`](super::Cachalot::settle) can wait for them.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Stores on their way beyond which a miss stores before returning: a backend slower than the
/// misses then slows the reads down instead of piling up results in memory.
const MAX_ON_THE_WAY: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Storing {
    count: AtomicUsize,
    idle: Notify,
}

impl Storing {
    /// Counts one more store on its way, unless there are too many already.
    pub(crate) fn begin(&self) -> bool {
        if self.count.fetch_add(1, Ordering::AcqRel) < MAX_ON_THE_WAY {
            return true;
        }
        self.end();
        false
    }

    /// Whether some store is on its way.
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) != 0
    }

    /// One store fewer on its way.
    pub(crate) fn end(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no store is on its way.
    pub(crate) async fn settle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check: an `end` in between still wakes us.
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
