//! `GET /openapi.json`: the OpenAPI 3 document of the whole public REST API, merged from
//! the documents each service generates from its own code (`GET /openapi.json` on each).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use service_kit::error::ApiError;
use utoipa::OpenApi as _;
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::state::AppState;

/// GET /openapi.json
pub async fn document(State(state): State<AppState>) -> Response {
    match merged(&state).await {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The routes the gateway answers itself.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(super::ws::upgrade),
    tags((name = "realtime", description = "The WebSocket event stream (docs/PROTOCOL.md)"))
)]
struct GatewayApi;

async fn merged(state: &AppState) -> Result<OpenApi, ApiError> {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Random Chats API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Interest-based random matching chat. Authenticate with \
                     `Authorization: Bearer <access token>`. Real-time events use the \
                     WebSocket at `GET /v1/ws`, described in docs/PROTOCOL.md.",
                ))
                .build(),
        )
        .build();
    // The WebSocket handshake is the gateway's own route.
    doc.merge(GatewayApi::openapi());
    for pool in state.rest_upstreams() {
        let part: OpenApi = pool
            .get_json("/openapi.json")
            .await
            .map_err(|e| e.into_api_error())?;
        doc.merge(part);
    }
    Ok(doc)
}
