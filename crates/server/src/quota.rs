//! Admission under the tenants' quotas, and the leases of the requests this process runs.
//!
//! A request is admitted by its region's store in one transaction ([`platform::Usage::admit`]):
//! the quotas ([`platform::quota`]) are checked against counts that every replica of the region
//! shares, and the request's usage row is written `running` under a lease. This module keeps the
//! rows this process has open ([`Leases`]): a task renews their leases every third of
//! [`LEASE`] and closes other processes' expired rows; an admitted request holds an [`OpenRow`],
//! which the request's meter completes when it ends and which, dropped before that (the request
//! was refused after admission), removes the row again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use platform::store::usage::RowId;
use platform::store::UsageRecord;
use platform::{Store, StoreError};

pub use platform::quota::{Exceeded, Limit};

/// How long a request's lease lasts unless renewed: the longest a killed replica's request
/// holds its tenant's concurrency slot.
pub const LEASE: Duration = Duration::from_secs(30);

/// The open usage rows of this process's running requests, by store; cheap to clone.
#[derive(Clone)]
pub struct Leases(Arc<Inner>);

struct Inner {
    ttl: Duration,
    open: Mutex<Vec<(Arc<Store>, BTreeSet<RowId>)>>,
    renewing: std::sync::Once,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("ttl", &self.0.ttl).finish_non_exhaustive()
    }
}

impl Leases {
    /// Leases of `ttl` each.
    pub fn new(ttl: Duration) -> Self {
        Leases(Arc::new(Inner { ttl, open: Mutex::new(Vec::new()), renewing: std::sync::Once::new() }))
    }

    /// A lease's length.
    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }

    /// Rows open now, in all stores.
    pub fn open(&self) -> usize {
        self.0.open.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, ids)| ids.len()).sum()
    }

    /// Sweeps `store` for expired rows (other processes' killed requests) from now on, whether
    /// or not this process has rows open there; starts the task (see below) if needed.
    pub fn watch(&self, store: &Arc<Store>) {
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.iter().any(|(s, _)| Arc::ptr_eq(s, store)) {
            open.push((Arc::clone(store), BTreeSet::new()));
        }
        drop(open);
        self.start_renewing();
    }

    fn add(&self, store: &Arc<Store>, id: RowId) {
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        match open.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            Some((_, ids)) => {
                ids.insert(id);
            }
            None => open.push((Arc::clone(store), BTreeSet::from([id]))),
        }
        drop(open);
        self.start_renewing();
    }

    fn remove(&self, store: &Arc<Store>, id: RowId) {
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, ids)) = open.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            ids.remove(&id);
        }
    }

    /// Starts, once and on the current Tokio runtime, the task that renews the open rows'
    /// leases every third of a lease and closes expired rows of every store it has seen (a
    /// killed replica's). It ends when the last handle to these leases is gone.
    fn start_renewing(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        self.0.renewing.call_once(|| {
            runtime.spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    let period = inner.ttl / 3;
                    drop(inner);
                    tokio::time::sleep(period).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let work: Vec<(Arc<Store>, Vec<RowId>)> = inner
                        .open
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .iter()
                        .map(|(s, ids)| (Arc::clone(s), ids.iter().copied().collect()))
                        .collect();
                    let ttl = inner.ttl;
                    drop(inner);
                    let _ = tokio::task::spawn_blocking(move || renew_all(&work, ttl)).await;
                }
            });
        });
    }
}

/// Renews `work`'s rows to now + `ttl` and closes each store's expired rows.
fn renew_all(work: &[(Arc<Store>, Vec<RowId>)], ttl: Duration) {
    let now = crate::state::unix_now();
    for (store, ids) in work {
        if !ids.is_empty() {
            if let Err(e) = store.renew(ids, now + ttl.as_secs()) {
                eprintln!("warning: renewing {} request leases failed: {e}", ids.len());
            }
        }
        if let Err(e) = store.reap(now) {
            eprintln!("warning: closing expired requests failed: {e}");
        }
    }
}

/// An admitted request's open usage row.
pub struct OpenRow {
    store: Arc<Store>,
    id: RowId,
    leases: Leases,
    done: bool,
}

impl std::fmt::Debug for OpenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenRow").field("id", &self.id).finish_non_exhaustive()
    }
}

impl OpenRow {
    /// Row `id` of `store`, open under `leases`.
    pub fn new(store: Arc<Store>, id: RowId, leases: &Leases) -> Self {
        leases.add(&store, id);
        OpenRow { store, id, leases: leases.clone(), done: false }
    }

    /// The row's id.
    pub fn id(&self) -> RowId {
        self.id
    }

    /// Completes the row with what the request used. Blocking: call it on the blocking pool.
    pub fn close(mut self, r: &UsageRecord) -> Result<(), StoreError> {
        self.done = true;
        self.leases.remove(&self.store, self.id);
        self.store.close_usage(self.id, r)
    }
}

impl Drop for OpenRow {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The request never ran: its row goes. Off the async workers; if this process stops
        // first, the row's lease runs out and it is closed as interrupted instead.
        self.leases.remove(&self.store, self.id);
        let (store, id) = (Arc::clone(&self.store), self.id);
        let abandon = move || {
            if let Err(e) = store.abandon(id) {
                eprintln!("warning: removing the row of a request that never ran failed: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(abandon)),
            Err(_) => abandon(),
        }
    }
}
