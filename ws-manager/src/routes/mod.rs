//! HTTP routes, one module per resource; every one is internal (service credential).
//!
//! - [`connections`] — registering and looking up users' connections.
//! - [`handlers`] — ws-handler heartbeats, full connection lists, the live list.
//! - [`deliver`] — pushing an event to users wherever they are connected.
//!
//! [`direct`] offers the hottest of them to a ws-handler in the same process.

pub mod connections;
pub mod deliver;
pub mod handlers;

use axum::Router;
use axum::extract::State;
use service_kit::auth::ServiceCaller;
use service_kit::client::DirectRoutes;
use service_kit::error::ApiError;
use service_kit::extract::{Json, Path};
use wire::api::wsmanager::{Deliver, DeregisterConnection, RegisterConnection, UserConnections};

use crate::state::AppState;

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(connections::router())
        .merge(handlers::router())
        .merge(deliver::router())
}

/// The per-connection and per-event endpoints as direct routes, for a ws-handler in the same
/// process: the same handlers, without JSON or routing in between.
pub fn direct(state: AppState) -> DirectRoutes {
    let (register, deregister, lookup, deliver) =
        (state.clone(), state.clone(), state.clone(), state);
    DirectRoutes::new()
        .route::<RegisterConnection, _, _>(move |(), body| {
            let state = register.clone();
            async move {
                let Json(count) =
                    connections::register(State(state), ServiceCaller, Json(body)).await?;
                Ok::<_, ApiError>(count)
            }
        })
        .route::<DeregisterConnection, _, _>(move |ids, ()| {
            let state = deregister.clone();
            async move {
                let Json(count) =
                    connections::deregister(State(state), ServiceCaller, Path(ids)).await?;
                Ok::<_, ApiError>(count)
            }
        })
        .route::<UserConnections, _, _>(move |user_id, ()| {
            let state = lookup.clone();
            async move {
                let Json(found) =
                    connections::connections(State(state), ServiceCaller, Path(user_id)).await?;
                Ok::<_, ApiError>(found)
            }
        })
        .route::<Deliver, _, _>(move |(), body| {
            let state = deliver.clone();
            async move {
                let Json(routed) =
                    deliver::deliver(State(state), ServiceCaller, Json(body)).await?;
                Ok::<_, ApiError>(routed)
            }
        })
}
