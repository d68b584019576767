//! Per-client-IP request rate limiting (GCRA via `governor`) and finding the client IP
//! behind trusted proxies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

    /// Drops state of clients that are back to a full allowance (run on a timer, see
    /// [`crate::app`]).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many clients the limiter holds state for.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The client's IP. With `trusted_proxies` = N > 0, each of the N proxies in front of the
/// gateway appended the address it received from to `X-Forwarded-For`, so the client is
/// the N-th entry from the right; anything left of it was written by the client and is
/// ignored. A header with fewer entries (or several headers, or an entry that is not an
/// IP) did not come through the proxies as configured, and the peer address is used.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxies: usize) -> IpAddr {
    let peer_ip = peer
        .map(|p| p.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if trusted_proxies == 0 {
        return peer_ip;
    }
    let mut values = headers.get_all("x-forwarded-for").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return peer_ip;
    };
    let Ok(value) = value.to_str() else {
        return peer_ip;
    };
    value
        .rsplit(',')
        .nth(trusted_proxies - 1)
        .and_then(|entry| entry.trim().parse().ok())
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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

    fn forwarded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static(value));
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let headers = forwarded("203.0.113.9");
        assert_eq!(client_ip(&headers, Some(peer), 0), peer.ip());
    }

    #[test]
    fn the_client_is_the_entry_added_by_the_outermost_trusted_proxy() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        // The client forged "1.2.3.4"; the one trusted proxy appended the real address.
        let headers = forwarded("1.2.3.4, 203.0.113.9");
        assert_eq!(client_ip(&headers, Some(peer), 1), ip("203.0.113.9"));
        // Two proxies: the second appended the first's address.
        let headers = forwarded("1.2.3.4, 203.0.113.9, 10.0.0.1");
        assert_eq!(client_ip(&headers, Some(peer), 2), ip("203.0.113.9"));
    }

    #[test]
    fn a_header_that_did_not_pass_every_proxy_is_not_believed() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        assert_eq!(
            client_ip(&forwarded("203.0.113.9"), Some(peer), 2),
            peer.ip()
        );
        assert_eq!(client_ip(&forwarded("not-an-ip"), Some(peer), 1), peer.ip());
        let mut two = forwarded("1.1.1.1");
        two.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        assert_eq!(client_ip(&two, Some(peer), 1), peer.ip());
    }

    #[test]
    fn spoofed_entries_all_count_against_one_client() {
        // 300 log-ins, each with a different forged leftmost entry, come from one client.
        let limiter = IpRateLimiter::new(1, 10);
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut refused = 0;
        for i in 0..300u32 {
            let mut headers = HeaderMap::new();
            let value = format!("198.51.{}.{}, 203.0.113.9", i / 256, i % 256);
            headers.insert("x-forwarded-for", HeaderValue::from_str(&value).unwrap());
            if limiter.check(client_ip(&headers, Some(peer), 1)).is_err() {
                refused += 1;
            }
        }
        assert!(refused >= 289, "only {refused} of 300 were limited");
        assert_eq!(limiter.tracked(), 1);
    }
}
