//! What the service and every centre stream share, apart from both so that neither imports
//! the other for it.
use std::sync::Arc;

use tokio::sync::watch;
use vaka_router::{Clock, LiveDirectory, Router};
use vaka_store::Store;

use crate::auth::Credentials;
use crate::config::CentreApiConfig;
use crate::cursors::Cursors;
use crate::sessions::Sessions;

/// The store, router, directory, credentials, live sessions and cursors every stream uses.
pub(crate) struct Shared {
    pub store: Store,
    pub router: Arc<Router>,
    pub dir: LiveDirectory,
    pub creds: Credentials,
    pub sessions: Sessions,
    pub cursors: Cursors,
    pub cfg: CentreApiConfig,
    pub clock: Clock,
    /// Set on shutdown: streams end without the centre counting as lost.
    pub stopping: watch::Sender<bool>,
}
