//! The OpenAPI description of the public routes, generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::queue;

/// The public API of matching-service.
#[derive(OpenApi)]
#[openapi(
    paths(queue::join, queue::status, queue::leave),
    components(schemas(service_kit::error::ErrorBody, service_kit::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "queue", description = "The waiting queue and matches"))
)]
struct MatchingApi;

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
    MatchingApi::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_route_is_described() {
        let doc = openapi();
        let queue = doc.paths.paths.get("/v1/queue").expect("/v1/queue");
        assert!(queue.get.is_some() && queue.post.is_some() && queue.delete.is_some());
        assert!(!doc.paths.paths.keys().any(|p| p.starts_with("/internal")));
    }
}
