//! The `Host` allow-list (DNS-rebinding protection) for the routes rmcp does not guard:
//! `/metrics` and `/healthz` get the same check as `/mcp` and the same answers (403 for a host
//! not allowed, 400 for a missing or malformed one), matched the way rmcp matches: host names
//! case-insensitively, brackets of IPv6 literals ignored, an allowed entry without a port
//! allowing every port. A request with more than one `Host` header is 400 on every route
//! (RFC 9112 §3.2).

use http::{header, HeaderMap, StatusCode};

/// Why a request's `Host` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefused {
    /// More than one `Host` header: 400.
    Duplicate,
    /// No `Host`, or one that is not an authority: 400.
    Malformed,
    /// A host not in the allow-list: 403.
    NotAllowed,
}

impl HostRefused {
    /// The HTTP status and the text to answer with.
    pub fn status(self) -> (StatusCode, &'static str) {
        match self {
            HostRefused::Duplicate => (
                StatusCode::BAD_REQUEST,
                "Bad Request: more than one Host header\n",
            ),
            HostRefused::Malformed => (
                StatusCode::BAD_REQUEST,
                "Bad Request: missing or invalid Host header\n",
            ),
            HostRefused::NotAllowed => (
                StatusCode::FORBIDDEN,
                "Forbidden: Host header is not allowed\n",
            ),
        }
    }
}

impl std::fmt::Display for HostRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status().1.trim_end())
    }
}

impl std::error::Error for HostRefused {}

/// Whether `headers` carry more than one `Host`.
pub(crate) fn duplicate_host(headers: &HeaderMap) -> bool {
    headers.get_all(header::HOST).iter().nth(1).is_some()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

fn authority(s: &str) -> Option<Authority> {
    let a = http::uri::Authority::try_from(s.trim()).ok()?;
    Some(Authority {
        host: a.host().trim_matches(['[', ']']).to_ascii_lowercase(),
        port: a.port_u16(),
    })
}

/// The allow-list.
#[derive(Debug, Clone)]
pub struct AllowedHosts(Vec<Authority>);

impl AllowedHosts {
    /// The hosts of `--allowed-hosts` (entries that are not authorities are kept as bare
    /// host names, as rmcp does). An empty list allows every host.
    pub fn new(hosts: &[String]) -> Self {
        AllowedHosts(
            hosts
                .iter()
                .filter(|h| !h.trim().is_empty())
                .map(|h| {
                    authority(h).unwrap_or_else(|| Authority {
                        host: h.trim().trim_matches(['[', ']']).to_ascii_lowercase(),
                        port: None,
                    })
                })
                .collect(),
        )
    }

    /// Checks the `Host` of a request.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HostRefused> {
        if duplicate_host(headers) {
            return Err(HostRefused::Duplicate);
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(authority)
            .ok_or(HostRefused::Malformed)?;
        if self.0.is_empty()
            || self
                .0
                .iter()
                .any(|a| a.host == host.host && a.port.is_none_or(|p| host.port == Some(p)))
        {
            Ok(())
        } else {
            Err(HostRefused::NotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_host(hosts: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts_match_like_rmcp() {
        let allowed =
            AllowedHosts::new(&["localhost".into(), "::1".into(), "example.com:8443".into()]);
        assert_eq!(allowed.check(&with_host(&["LOCALHOST:8000"])), Ok(()));
        assert_eq!(allowed.check(&with_host(&["[::1]:80"])), Ok(()));
        assert_eq!(allowed.check(&with_host(&["example.com:8443"])), Ok(()));
        assert_eq!(
            allowed.check(&with_host(&["example.com:80"])),
            Err(HostRefused::NotAllowed)
        );
        assert_eq!(
            allowed.check(&with_host(&["evil.example"])),
            Err(HostRefused::NotAllowed)
        );
        assert_eq!(allowed.check(&with_host(&[])), Err(HostRefused::Malformed));
        assert_eq!(
            allowed.check(&with_host(&["a b"])),
            Err(HostRefused::Malformed)
        );
        assert_eq!(
            allowed.check(&with_host(&["localhost", "localhost"])),
            Err(HostRefused::Duplicate)
        );
        assert_eq!(AllowedHosts::new(&[]).check(&with_host(&["any"])), Ok(()));
    }
}
