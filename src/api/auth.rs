//! X-API-Key authentication: the OpenAPI security scheme, and the checks
//! behind it.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use poem::Request;
use poem_openapi::{SecurityScheme, auth::ApiKey};
use tracing::warn;

use crate::{
    api::error::{ApiError, ErrorCode},
    api::state::AppState,
    domain::{
        keys::{Caller, SECRET_PREFIX, hash_secret, is_well_formed},
        time::Clock,
    },
    store::{Store, keys},
};

/// The header that carries the key.
pub const HEADER: &str = "X-API-Key";

/// How often at most a key's last_used_at is written; a busy pipeline
/// should not turn every request into a database write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// An API key, sent in the `X-API-Key` header. Create one with
/// `griot-registry keys create --name NAME`. Writes need a key with the
/// `write` scope; reads need a key only when the server runs with
/// `--require-auth-for-reads`.
#[derive(SecurityScheme)]
#[oai(
    rename = "ApiKeyAuth",
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "check_key"
)]
pub struct ApiKeyAuth(pub Caller);

async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Caller> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::internal(&"app state missing")))?;
    Ok(state.auth.authenticate(&key.key).await?)
}

/// Access to a read: a valid key, or none at all when reads are open.
#[derive(SecurityScheme)]
pub enum ReadAccess {
    Key(ApiKeyAuth),
    #[oai(fallback)]
    Anonymous,
}

impl ApiKeyAuth {
    /// Refuses a key whose scope does not allow writes.
    pub fn writer(self) -> Result<Caller, ApiError> {
        if self.0.scope.can_write() {
            Ok(self.0)
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "API key '{}' has the read scope and cannot write; use a key created \
                     with --scope write",
                    self.0.name
                ),
            ))
        }
    }
}

pub struct Authenticator {
    store: Store,
    require_auth_for_reads: bool,
    clock: Clock,
    last_touched: Mutex<HashMap<i64, Instant>>,
}

impl Authenticator {
    pub fn new(store: Store, require_auth_for_reads: bool, clock: Clock) -> Self {
        Self {
            store,
            require_auth_for_reads,
            clock,
            last_touched: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a presented secret and says who it belongs to. Each failure
    /// says which it was, so a person can fix the right thing.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, ApiError> {
        if !is_well_formed(presented) {
            return Err(ApiError::unauthorized(format!(
                "malformed API key in the X-API-Key header: a key is '{SECRET_PREFIX}' \
                 followed by 64 lowercase hex characters"
            )));
        }
        let hash = hash_secret(presented);
        let key = self
            .store
            .read(move |c| keys::find_by_hash(c, &hash))
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("unknown API key: no key with this secret exists")
            })?;
        if let Some(at) = key.revoked_at {
            return Err(ApiError::unauthorized(format!(
                "API key '{}' was revoked at {at}",
                key.name
            )));
        }
        self.touch(key.id);
        Ok(Caller {
            key_id: key.id,
            name: key.name,
            scope: key.scope,
        })
    }

    /// Decides a read: with a valid key it is that key's; without one it is
    /// anonymous unless reads are protected. A key that was sent but is bad
    /// is refused even when reads are open: the client meant to use it.
    pub async fn read(
        &self,
        access: ReadAccess,
        req: &Request,
    ) -> Result<Option<Caller>, ApiError> {
        match access {
            ReadAccess::Key(ApiKeyAuth(caller)) => Ok(Some(caller)),
            ReadAccess::Anonymous => match req.headers().get(HEADER) {
                Some(value) => {
                    let presented = value.to_str().unwrap_or_default();
                    self.authenticate(presented).await.map(Some)
                }
                None if self.require_auth_for_reads => Err(ApiError::unauthorized(
                    "this server requires an API key for reads: send one in the X-API-Key header",
                )),
                None => Ok(None),
            },
        }
    }

    /// Records the key's use, at most once per `TOUCH_EVERY`, off the
    /// request's path: a failed touch must not fail the request.
    fn touch(&self, key_id: i64) {
        {
            let mut seen = self
                .last_touched
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if seen
                .get(&key_id)
                .is_some_and(|t| now.duration_since(*t) < TOUCH_EVERY)
            {
                return;
            }
            seen.insert(key_id, now);
        }
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::spawn(async move {
            if let Err(e) = store.write(move |tx| keys::touch(tx, key_id, now)).await {
                warn!(error = %e, key_id, "could not record API key use");
            }
        });
    }
}
