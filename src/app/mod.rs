//! The use cases: what the registry does, whoever asks (the HTTP API, the
//! CLI, the reaper). Each use case is one function that opens its own
//! transaction, applies the domain's rules, calls the store, records the
//! events and wakes the waiters. Handlers only translate to and from it.

pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod retention;
pub mod runs;
pub mod validations;
pub mod webhooks;

use std::sync::Arc;

use crate::{
    domain::{DomainError, keys::AuthError, limits::Limits, time::Clock},
    store::{Store, StoreError},
};

pub use keys::Authenticator;
pub use lifecycle::RunWatch;
pub use metrics::Metrics;
pub use webhooks::{Outbox, Payloads, WebhookSettings};

/// Tunables the use cases read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Reads need a key too (`--require-auth-for-reads`).
    pub require_auth_for_reads: bool,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_retention_secs: i64,
    /// Caps on what one run or validation may hold.
    pub limits: Limits,
    /// Webhook delivery: private targets, the retry window, links.
    pub webhooks: WebhookSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            require_auth_for_reads: false,
            idempotency_retention_secs: 24 * 3600,
            limits: Limits::default(),
            webhooks: WebhookSettings::default(),
        }
    }
}

/// The registry: its storage, its clock, the waiters, the webhook outbox,
/// the settings and the metrics.
/// Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub clock: Clock,
    pub watch: RunWatch,
    pub outbox: Arc<Outbox>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

impl App {
    /// `payloads` writes runs and validations as the API returns them, for
    /// webhook messages (`crate::new_app` passes the API's).
    pub fn with_settings(
        store: Store,
        settings: Settings,
        clock: Clock,
        payloads: Arc<dyn Payloads>,
    ) -> Self {
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            settings.require_auth_for_reads,
            clock.clone(),
        ));
        Self {
            metrics: Arc::new(Metrics::new(store.clone())),
            store,
            auth,
            clock,
            watch: RunWatch::default(),
            outbox: Arc::new(Outbox::new(payloads, settings.webhooks.clone())),
            settings,
        }
    }
}

/// Why a use case did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The run, validation or key named does not exist.
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },

    /// The rules refuse the request.
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// The caller's key does not allow the request.
    #[error(transparent)]
    Auth(#[from] AuthError),

    /// Another key already has the name asked for.
    #[error("an API key named '{0}' already exists")]
    KeyNameTaken(String),

    /// The bootstrap key's name belongs to another key.
    #[error(
        "a different API key is already named '{0}': set GRIOT_BOOTSTRAP_API_KEY_NAME to \
         another name, or revoke and rename the old key"
    )]
    BootstrapNameTaken(String),

    /// The storage is too busy to take the request now (every connection
    /// in use for the pool's timeout, or the query ran past its deadline);
    /// retrying soon may work.
    #[error(transparent)]
    Busy(StoreError),

    /// The storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Pool(_) | StoreError::Deadline(_) => AppError::Busy(err),
            other => AppError::Store(other),
        }
    }
}

impl AppError {
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        AppError::NotFound {
            kind,
            id: id.into(),
        }
    }
}
