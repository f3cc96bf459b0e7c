//! API keys: checking the key a request presents, and managing keys for
//! the `keys` commands and `serve`'s bootstrap.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use tracing::{info, warn};

use super::AppError;
use crate::{
    domain::{
        keys::{
            ApiKey, AuthError, Caller, KeyScope, Secret, hash_secret, is_well_formed,
            validate_key_name,
        },
        time::{Clock, Timestamp},
    },
    store::{Store, StoreError, keys},
};

/// How often at most a key's last_used_at is written; a busy pipeline
/// should not turn every request into a database write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Checks presented secrets against the stored hashes, and decides reads.
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

    /// Checks a presented secret and says who it belongs to.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AppError> {
        if !is_well_formed(presented) {
            return Err(AuthError::Malformed.into());
        }
        let hash = hash_secret(presented);
        let key = self
            .store
            .read_key(move |c| keys::find_by_hash(c, &hash))
            .await?
            .ok_or(AuthError::Unknown)?;
        if let Some(at) = key.revoked_at {
            return Err(AuthError::Revoked { name: key.name, at }.into());
        }
        self.touch(key.id);
        Ok(Caller {
            key_id: key.id,
            name: key.name,
            scope: key.scope,
        })
    }

    /// Decides a read made with `presented` (None when no key was sent):
    /// anonymous reads pass unless reads are protected, and a key that was
    /// sent but is bad is refused even when reads are open, since the client
    /// meant to use it.
    pub async fn read(&self, presented: Option<&str>) -> Result<Option<Caller>, AppError> {
        match presented {
            Some(secret) => self.authenticate(secret).await.map(Some),
            None if self.require_auth_for_reads => Err(AuthError::ReadsNeedKey.into()),
            None => Ok(None),
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

/// Creates a key and returns it with its secret, which exists nowhere else.
pub fn create(store: &Store, name: &str, scope: KeyScope) -> Result<(ApiKey, Secret), AppError> {
    let name = validate_key_name(name)?;
    let secret = Secret::generate()?;
    let hash = secret.hash();
    let key = store.write_blocking(move |tx| {
        keys::insert(tx, &name, scope, &hash, Timestamp::now())?.ok_or(AppError::KeyNameTaken(name))
    })?;
    Ok((key, secret))
}

/// Every key, revoked or not, by name.
pub fn list(store: &Store) -> Result<Vec<ApiKey>, StoreError> {
    store.read_blocking(keys::list)
}

/// Revokes the key called `name`; revoking twice keeps the first time.
pub fn revoke(store: &Store, name: &str) -> Result<ApiKey, AppError> {
    let name = name.to_owned();
    store.write_blocking(move |tx| {
        keys::revoke(tx, &name, Timestamp::now())?
            .ok_or_else(|| AppError::not_found("API key", &name))
    })
}

/// What bootstrapping did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    Created,
    AlreadyThere,
    Revoked,
}

/// Registers `secret` under `name` unless a key with that secret exists,
/// so restarting with the same variable is harmless.
pub fn bootstrap(store: &Store, secret: &str, name: &str) -> Result<Bootstrap, AppError> {
    let secret = Secret::from_string(secret)?;
    let name = validate_key_name(name)?;
    let hash = secret.hash();
    store.write_blocking(move |tx| match keys::find_by_hash(tx, &hash)? {
        Some(k) if k.revoked_at.is_some() => Ok(Bootstrap::Revoked),
        Some(_) => Ok(Bootstrap::AlreadyThere),
        None => {
            keys::insert(tx, &name, KeyScope::Write, &hash, Timestamp::now())?
                .ok_or(AppError::BootstrapNameTaken(name))?;
            Ok(Bootstrap::Created)
        }
    })
}

/// Applies the bootstrap key, if any, and warns when no key can write.
pub fn prepare_for_serving(
    store: &Store,
    bootstrap_secret: Option<&str>,
    bootstrap_name: &str,
    db_path: &std::path::Path,
) -> Result<(), AppError> {
    if let Some(secret) = bootstrap_secret {
        match bootstrap(store, secret, bootstrap_name)? {
            Bootstrap::Created => info!(name = bootstrap_name, "registered the bootstrap API key"),
            Bootstrap::AlreadyThere => {}
            Bootstrap::Revoked => warn!(
                "GRIOT_BOOTSTRAP_API_KEY names a revoked key; it stays revoked and is refused"
            ),
        }
    }
    if store.read_blocking(keys::count_active)? == 0 {
        // Told apart: "none yet" is a new deployment, "all revoked" is
        // someone's decision (or a mistake) worth seeing as such.
        let what = if store.read_blocking(keys::count_all)? == 0 {
            "no API keys exist"
        } else {
            "only revoked API keys exist"
        };
        warn!(
            "{what}, so every write will be refused with 401; create one with \
             `griot-registry keys create --name NAME --db {}` (or set GRIOT_BOOTSTRAP_API_KEY)",
            db_path.display()
        );
    }
    Ok(())
}
