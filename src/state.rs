//! What every request handler shares.

use std::sync::Arc;

use crate::{api::auth::Authenticator, domain::time::Clock, store::Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub clock: Clock,
}

impl AppState {
    pub fn new(store: Store, require_auth_for_reads: bool, clock: Clock) -> Self {
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            require_auth_for_reads,
            clock.clone(),
        ));
        Self { store, auth, clock }
    }
}
