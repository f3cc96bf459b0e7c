//! Stopping a read nobody waits for: the async side holds a `OnDrop` that,
//! when dropped or told to, interrupts the statement running on the
//! connection the blocking side armed it with.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use r2d2_sqlite::rusqlite::{Connection, InterruptHandle};

use super::{StoreError, TaskError};

#[derive(Default)]
struct State {
    /// The connection running the read, while it runs.
    handle: Option<InterruptHandle>,
    /// Set once the read is no longer wanted.
    cancelled: bool,
    /// Set once the read has its connection.
    started: bool,
}

/// Shared by the two sides of one read.
#[derive(Clone, Default)]
pub(super) struct Cancel(Arc<Mutex<State>>);

impl Cancel {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The async side's handle: interrupts the read when dropped.
    pub(super) fn on_drop(&self) -> OnDrop {
        OnDrop(Some(self.clone()))
    }

    /// Called on the blocking side with the connection the read runs on;
    /// fails at once if the read was cancelled before it began. Until the
    /// returned guard drops, cancelling interrupts `conn`; after, never, as
    /// the connection then serves another read.
    pub(super) fn arm(&self, conn: &Connection) -> Result<Armed, StoreError> {
        let handle = conn.get_interrupt_handle();
        self.with(|s| {
            if s.cancelled {
                return Err(StoreError::Task(TaskError::NotRun));
            }
            s.handle = Some(handle);
            s.started = true;
            Ok(Armed(self.clone()))
        })
    }

    /// Interrupts the read's statement; true while the read still holds
    /// its connection. SQLite forgets an interrupt that lands between two
    /// statements, so a caller repeats it until this answers false.
    fn cancel(&self) -> bool {
        self.with(|s| {
            s.cancelled = true;
            s.handle.as_ref().inspect(|h| h.interrupt()).is_some()
        })
    }

    /// Interrupts until the read has let go of its connection. True if it
    /// had one; if not, it never runs (`arm` refuses it).
    pub(super) async fn stop(&self) -> bool {
        while self.cancel() {
            tokio::time::sleep(RETRY).await;
        }
        self.with(|s| s.started)
    }
}

/// How often an interrupt is repeated until the read notices it.
const RETRY: Duration = Duration::from_millis(5);

/// Disarms its `Cancel` when the read is over.
pub(super) struct Armed(Cancel);

impl Drop for Armed {
    fn drop(&mut self) {
        self.0.with(|s| s.handle = None);
    }
}

/// Interrupts the read when dropped, unless disarmed.
pub(super) struct OnDrop(Option<Cancel>);

impl OnDrop {
    /// The read finished: dropping interrupts nothing.
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take()
            && c.cancel()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                c.stop().await;
            });
        }
    }
}
