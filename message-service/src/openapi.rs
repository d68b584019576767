//! The OpenAPI description of the public routes, generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{blocks, chats, reports};

/// The public API of message-service.
#[derive(OpenApi)]
#[openapi(
    paths(
        chats::list_chats,
        chats::get_chat,
        chats::history,
        chats::end_chat,
        blocks::block,
        blocks::unblock,
        blocks::list_blocks,
        reports::report,
    ),
    components(schemas(
        service_kit::error::ErrorBody,
        service_kit::error::ErrorDetail,
        wire::api::auth::PublicProfile,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "chats", description = "The caller's chats and their history"),
        (name = "blocks", description = "Blocking users"),
        (name = "reports", description = "Reporting users to moderators"),
    )
)]
struct MessageApi;

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
    MessageApi::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_route_is_described() {
        let doc = openapi();
        for path in [
            "/v1/chats",
            "/v1/chats/{id}",
            "/v1/chats/{id}/messages",
            "/v1/chats/{id}/end",
            "/v1/blocks",
            "/v1/blocks/{user_id}",
            "/v1/reports",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} is missing");
        }
        assert!(!doc.paths.paths.keys().any(|p| p.starts_with("/internal")));
        let schemes = &doc.components.expect("components").security_schemes;
        assert!(schemes.contains_key("bearer"));
    }
}
