//! Per-client-IP request rate limiting (GCRA via `governor`), answering 429 with
//! `Retry-After`.

use service_kit::error::ErrorCode;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use service_kit::error::ApiError;

use crate::state::AppState;

/// Header the gateway sets to the client's IP for the services (any value sent by the
/// client is replaced).
pub static CLIENT_IP_HEADER: HeaderName = HeaderName::from_static("x-rc-client-ip");

/// A keyed GCRA limiter by client IP.
#[derive(Debug)]
pub struct IpRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl IpRateLimiter {
    /// `per_second` sustained, `burst` above it.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).expect("max(1) is non-zero");
        let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// `Ok` when `ip` may proceed, else the seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Drops state of clients that are back to a full allowance.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The client's IP: the first `X-Forwarded-For` entry when trusted, else the peer address.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.map(|p| p.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Middleware: refuse over-rate clients with 429 and record the client IP for services.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let ip = client_ip(req.headers(), peer, state.limits().trust_forwarded_for);
    if let Err(wait) = state.limiter().check(ip) {
        metrics::counter!("gateway_rate_limited_total").increment(1);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests; slow down",
        )
        .with_retry_after(wait.max(1))
        .into_response();
    }
    let value =
        HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value");
    req.headers_mut().insert(CLIENT_IP_HEADER.clone(), value);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_burst_is_told_when_to_retry() {
        let limiter = IpRateLimiter::new(1, 2);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        let wait = limiter.check(ip).unwrap_err();
        assert!(wait >= 1);
    }

    #[test]
    fn clients_are_limited_independently() {
        let limiter = IpRateLimiter::new(1, 1);
        assert!(
            limiter
                .check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
                .is_ok()
        );
        assert!(
            limiter
                .check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
                .is_ok()
        );
    }

    #[test]
    fn forwarded_for_is_ignored_unless_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(client_ip(&headers, Some(peer), false), peer.ip());
        assert_eq!(
            client_ip(&headers, Some(peer), true),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }
}
