//! X-API-Key authentication: the OpenAPI security scheme, and the checks
//! behind it.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::ApiKey};

use super::error::ApiError;
use crate::{
    app::{App, AppError},
    domain::keys::Caller,
};

/// The header that carries the key.
pub const HEADER: &str = "X-API-Key";

/// An API key, sent in the `X-API-Key` header. Create one with
/// `griot-registry keys create --name NAME`. Writes need a key with the
/// `write` scope (or `admin`); managing webhooks needs `admin`; reads need
/// a key only when the server runs with `--require-auth-for-reads`.
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
    let app = req
        .data::<App>()
        .ok_or_else(|| poem::Error::from(ApiError::internal(&"app state missing")))?;
    Ok(app
        .auth
        .authenticate(&key.key)
        .await
        .map_err(ApiError::from)?)
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
        Ok(self.0.writer().map_err(AppError::from)?)
    }

    /// Refuses a key without the admin scope.
    pub fn admin(self) -> Result<Caller, ApiError> {
        Ok(self.0.admin().map_err(AppError::from)?)
    }
}

/// Decides a read: with a valid key it is that key's; without one it is
/// anonymous unless reads are protected. A key that was sent but did not
/// pass the security scheme (not text, say) is checked here, so it is
/// refused rather than ignored.
pub async fn read(
    app: &App,
    access: ReadAccess,
    req: &Request,
) -> Result<Option<Caller>, ApiError> {
    match access {
        ReadAccess::Key(ApiKeyAuth(caller)) => Ok(Some(caller)),
        ReadAccess::Anonymous => {
            let presented = req
                .headers()
                .get(HEADER)
                .map(|value| value.to_str().unwrap_or_default());
            Ok(app.auth.read(presented).await?)
        }
    }
}
