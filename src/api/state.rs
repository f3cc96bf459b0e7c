//! What every request handler shares.

use std::sync::Arc;

use crate::{
    api::auth::Authenticator,
    app::lifecycle::RunWatch,
    domain::{limits::Limits, time::Clock},
    store::Store,
};

/// Tunables that handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub require_auth_for_reads: bool,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_retention_secs: i64,
    /// Caps on what one run or validation may hold.
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            require_auth_for_reads: false,
            idempotency_retention_secs: 24 * 3600,
            limits: Limits::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub clock: Clock,
    pub watch: RunWatch,
    pub settings: Settings,
}

impl AppState {
    pub fn new(store: Store, require_auth_for_reads: bool, clock: Clock) -> Self {
        Self::with_settings(
            store,
            Settings {
                require_auth_for_reads,
                ..Settings::default()
            },
            clock,
        )
    }

    pub fn with_settings(store: Store, settings: Settings, clock: Clock) -> Self {
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            settings.require_auth_for_reads,
            clock.clone(),
        ));
        Self {
            store,
            auth,
            clock,
            watch: RunWatch::default(),
            settings,
        }
    }
}
