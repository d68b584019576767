//! The OpenAPI description of the public routes, generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{auth, keys, me};

/// The public API of auth-service.
#[derive(OpenApi)]
#[openapi(
    paths(
        auth::signup,
        auth::login,
        auth::refresh,
        auth::logout,
        me::get_profile,
        me::update_profile,
        me::get_preferences,
        me::put_preferences,
        me::change_password,
        me::list_sessions,
        me::end_session,
        keys::jwks,
    ),
    components(schemas(service_kit::error::ErrorBody, service_kit::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign up, log in, tokens"),
        (name = "me", description = "The caller's account, preferences and sessions"),
    )
)]
struct AuthApi;

/// Declares the `bearer` security scheme (an access token in `Authorization: Bearer`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the public routes (served at `GET /openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    AuthApi::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_route_is_described() {
        let doc = openapi();
        for path in [
            "/v1/auth/signup",
            "/v1/auth/login",
            "/v1/auth/refresh",
            "/v1/auth/logout",
            "/v1/me",
            "/v1/me/preferences",
            "/v1/me/password",
            "/v1/me/sessions",
            "/v1/me/sessions/{id}",
            "/.well-known/jwks.json",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} is missing");
        }
        assert!(!doc.paths.paths.keys().any(|p| p.starts_with("/internal")));
        let schemes = &doc.components.expect("components").security_schemes;
        assert!(schemes.contains_key("bearer"));
    }
}
