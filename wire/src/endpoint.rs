//! Endpoints as types: each route's method, path and request and response bodies, defined
//! once and used by the server that serves it and by every caller.
//!
//! ```
//! use wire::api::message::AppendMessage;
//! use wire::endpoint::{Endpoint, PathParams};
//! let chat = uuid::Uuid::nil();
//! assert_eq!(AppendMessage::METHOD, http::Method::POST);
//! assert_eq!(
//!     chat.render(AppendMessage::ROUTE),
//!     "/internal/chats/00000000-0000-0000-0000-000000000000/messages"
//! );
//! ```

use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// One route of one service.
///
/// The request travels as the JSON body for `POST`, `PUT` and `PATCH`, and as the query
/// string for `GET` and `DELETE` ([`Endpoint::request_in_query`]). A response of `()`
/// means an empty body (204).
pub trait Endpoint: 'static {
    /// The HTTP method.
    const METHOD: Method;
    /// The route pattern, with `{name}` placeholders as axum writes them, e.g.
    /// `/internal/chats/{id}/messages`.
    const ROUTE: &'static str;
    /// The values of the path placeholders, in order.
    type Path: PathParams + Send + 'static;
    /// The request: the JSON body, or the query string for `GET` and `DELETE`.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// The successful response body.
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// Whether the request travels in the query string rather than the body.
    fn request_in_query() -> bool {
        Self::METHOD == Method::GET || Self::METHOD == Method::DELETE
    }
}

/// Values filling a route's `{...}` placeholders in order.
pub trait PathParams {
    /// The path for `route` with each placeholder replaced by the next value.
    fn render(&self, route: &str) -> String;
}

fn fill(route: &str, values: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(route.len() + 36 * values.len());
    let mut values = values.iter();
    let mut rest = route;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        match values.next() {
            Some(value) => {
                use std::fmt::Write;
                let _ = write!(out, "{value}");
            }
            None => out.push_str(&rest[open..close]),
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

impl PathParams for () {
    fn render(&self, route: &str) -> String {
        route.to_owned()
    }
}

impl PathParams for Uuid {
    fn render(&self, route: &str) -> String {
        fill(route, &[self])
    }
}

impl PathParams for (Uuid, Uuid) {
    fn render(&self, route: &str) -> String {
        fill(route, &[&self.0, &self.1])
    }
}

/// Declares an endpoint type: `endpoint!(Name: METHOD "route", Path, Request => Response);`
macro_rules! endpoint {
    ($(#[doc = $doc:literal])+ $name:ident: $method:ident $route:literal, $path:ty, $request:ty => $response:ty) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl $crate::endpoint::Endpoint for $name {
            const METHOD: http::Method = http::Method::$method;
            const ROUTE: &'static str = $route;
            type Path = $path;
            type Request = $request;
            type Response = $response;
        }
    };
}
pub(crate) use endpoint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!((a, b).render("/x/{user}/y/{conn}"), format!("/x/{a}/y/{b}"));
        assert_eq!(().render("/plain"), "/plain");
    }

    #[test]
    fn a_placeholder_without_a_value_stays() {
        assert_eq!(Uuid::nil().render("/a/{x}/{y}").matches('{').count(), 1);
    }
}
