//! The directory every task reads while it changes: a snapshot swapped whole on each change
//! (arc-swap), so a read on the hot path takes no lock and never sees half a change; and a
//! revision watch for tasks that must act on a change (a front closing a removed device).
use arc_swap::{ArcSwap, Guard};
use std::sync::Arc;
use tokio::sync::watch;
use vaka_core::directory::Directory;

#[derive(Clone)]
pub struct LiveDirectory {
    current: Arc<ArcSwap<Directory>>,
    revision: watch::Sender<u64>,
}

impl LiveDirectory {
    pub fn new(directory: Directory) -> LiveDirectory {
        let revision = watch::Sender::new(directory.revision);
        LiveDirectory {
            current: Arc::new(ArcSwap::from_pointee(directory)),
            revision,
        }
    }

    /// The directory now, for one decision: cheap, lock-free; do not keep it across an await.
    pub fn load(&self) -> Guard<Arc<Directory>> {
        self.current.load()
    }

    /// The directory now, to keep.
    pub fn snapshot(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Makes `directory` the one every reader sees, then tells the watchers its revision.
    pub fn publish(&self, directory: Directory) {
        let revision = directory.revision;
        self.current.store(Arc::new(directory));
        self.revision.send_replace(revision);
    }

    /// Wakes on every published change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}

impl From<Directory> for LiveDirectory {
    fn from(d: Directory) -> Self {
        LiveDirectory::new(d)
    }
}

impl From<Arc<Directory>> for LiveDirectory {
    fn from(d: Arc<Directory>) -> Self {
        LiveDirectory::new(Arc::unwrap_or_clone(d))
    }
}

impl std::fmt::Debug for LiveDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDirectory")
            .field("revision", &self.load().revision)
            .finish()
    }
}
