//! The OpenAPI description of the public route (the WebSocket handshake; the frames are
//! described in `docs/PROTOCOL.md`).

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::ws;

/// The public API of ws-handler.
#[derive(OpenApi)]
#[openapi(
    paths(ws::upgrade),
    components(schemas(service_kit::error::ErrorBody, service_kit::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags((name = "realtime", description = "The WebSocket event stream (docs/PROTOCOL.md)"))
)]
struct HandlerApi;

/// Declares the `bearer` security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
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

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    HandlerApi::openapi()
}
