//! The OpenAPI description of the internal routes (all need the service credential in
//! `x-rc-service-token`; bodies are the `wire::api::wsmanager` types).

use utoipa::OpenApi;

use crate::routes::{connections, deliver, handlers};

/// The internal API of ws-manager.
#[derive(OpenApi)]
#[openapi(
    info(title = "ws-manager", description = "Connection registry, handler liveness and event delivery (internal)."),
    paths(
        connections::register,
        connections::deregister,
        connections::connections,
        handlers::heartbeat,
        handlers::replace_connections,
        handlers::remove_handler,
        handlers::live_handlers,
        deliver::deliver,
    ),
    components(schemas(service_kit::error::ErrorBody, service_kit::error::ErrorDetail)),
    tags((name = "internal", description = "Service-to-service endpoints"))
)]
struct ManagerApi;

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ManagerApi::openapi()
}
