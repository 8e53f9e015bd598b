//! HTTP helpers: bearer tokens, the client address and identity extensions, and request timing.
//! (Metric labels use the server's fixed route table, never the request path.)

use crate::series::Exact as _;
use std::net::SocketAddr;
use std::time::Instant;

use crate::metrics::HttpMetrics;

/// The token of an `Authorization: Bearer TOKEN` header, if `headers` carry one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(http::header::AUTHORIZATION)?
        .as_bytes()
        .strip_prefix(b"Bearer ")
}

/// Whether `given` is `token`, compared in constant time (for equal lengths). An empty token
/// matches nothing, so a misconfiguration fails closed.
pub fn token_matches(given: &[u8], token: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    !given.is_empty() && !token.is_empty() && bool::from(given.ct_eq(token))
}

/// The client's identity when it authenticated with a bearer token (the token's index in the
/// server's list), as a request extension: per-client limits then key on it, not on the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIdentity(pub u32);

/// The remote address of an HTTP request. The server inserts it into each request's extensions;
/// rmcp hands the request parts to tool handlers, so limits can key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The `method` label of an HTTP method: the nine methods of RFC 9110 and PATCH keep their name,
/// every other (client-chosen) token folds into `OTHER`, so junk methods cannot fill the
/// `http_requests_total` table and push real series into its overflow.
///
/// ```
/// use vitals_std::http::method_label;
/// assert_eq!(method_label(&http::Method::GET), "GET");
/// assert_eq!(method_label(&http::Method::from_bytes(b"BREW").unwrap()), "OTHER");
/// ```
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Times one HTTP request; [`RequestTimer::finish`] records it.
#[derive(Debug)]
pub struct RequestTimer {
    metrics: &'static HttpMetrics,
    started: Instant,
    finished: bool,
}

impl RequestTimer {
    /// Starts timing (counts the request as in flight).
    pub fn start(metrics: &'static HttpMetrics) -> Self {
        metrics.in_flight.inc();
        RequestTimer {
            metrics,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records the request under `method`, the normalised `path` label and `status`; returns the
    /// elapsed time.
    pub fn finish(mut self, method: &str, path: &str, status: u16) -> std::time::Duration {
        self.finished = true;
        self.metrics.in_flight.dec();
        let elapsed = self.started.elapsed();
        let mut code = itoa_buf(status);
        let code = code.as_str();
        self.metrics
            .requests
            .exact_labels([method, path, code])
            .inc();
        self.metrics
            .duration
            .exact_labels([method, path])
            .observe_duration(elapsed);
        elapsed
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.in_flight.dec();
        }
    }
}

/// A status code as text without allocating.
struct Code([u8; 3]);

impl Code {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

fn itoa_buf(status: u16) -> Code {
    let s = status.min(999);
    Code([
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_three_digits() {
        assert_eq!(itoa_buf(404).as_str(), "404");
    }

    #[test]
    fn methods_fold_into_other() {
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert_eq!(
                method_label(&http::Method::from_bytes(m.as_bytes()).unwrap()),
                m
            );
        }
        for m in ["get", "FOO", "X-1", "PROPFIND"] {
            assert_eq!(
                method_label(&http::Method::from_bytes(m.as_bytes()).unwrap()),
                "OTHER"
            );
        }
    }

    #[test]
    fn timer_records() {
        let m: &'static HttpMetrics = crate::registry::leak(HttpMetrics::new());
        let t = RequestTimer::start(m);
        assert_eq!(m.in_flight.get(), 1);
        t.finish("GET", "/metrics", 200);
        assert_eq!(m.in_flight.get(), 0);
        assert_eq!(m.requests.exact_labels(["GET", "/metrics", "200"]).get(), 1);
        drop(RequestTimer::start(m));
        assert_eq!(m.in_flight.get(), 0);
    }
}
