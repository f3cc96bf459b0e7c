//! Key management shared by the `keys` commands and `serve`'s bootstrap.

use tracing::{info, warn};

use crate::{
    domain::{
        keys::{ApiKey, KeyScope, Secret, validate_key_name},
        time::Timestamp,
    },
    store::{Store, StoreError, keys},
};

/// Creates a key and returns it with its secret, which exists nowhere else.
pub fn create(store: &Store, name: &str, scope: KeyScope) -> Result<(ApiKey, Secret), StoreError> {
    let name = validate_key_name(name)?;
    let secret = Secret::generate()?;
    let hash = secret.hash();
    let key =
        store.write_blocking(move |tx| keys::insert(tx, &name, scope, &hash, Timestamp::now()))?;
    Ok((key, secret))
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
pub fn bootstrap(store: &Store, secret: &str, name: &str) -> Result<Bootstrap, StoreError> {
    let secret = Secret::from_string(secret)?;
    let name = validate_key_name(name)?;
    let hash = secret.hash();
    store.write_blocking(move |tx| match keys::find_by_hash(tx, &hash)? {
        Some(k) if k.revoked_at.is_some() => Ok(Bootstrap::Revoked),
        Some(_) => Ok(Bootstrap::AlreadyThere),
        None => {
            keys::insert(tx, &name, KeyScope::Write, &hash, Timestamp::now()).map_err(
                |e| match e {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "a different API key is already named '{name}': set \
                             GRIOT_BOOTSTRAP_API_KEY_NAME to another name, or revoke and \
                             rename the old key"
                    )),
                    other => other,
                },
            )?;
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
) -> Result<(), StoreError> {
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
