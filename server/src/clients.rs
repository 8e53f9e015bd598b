//! Who a client is: its key (IPv4 address or IPv6 /64, or the forwarded address when the peer is
//! a trusted reverse proxy), and per-key counters bounding what one client may hold at once
//! (connections, SSE streams).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use http::HeaderMap;

/// An IP network, `ADDR/PREFIX` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an IP address or CIDR network (e.g. 10.0.0.0/8, ::1)",
            self.0
        )
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s.trim(), None),
        };
        let net = canonical(addr.parse::<IpAddr>().map_err(|_| err())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr {
            net: mask(net, prefix),
            prefix,
        })
    }
}

impl Cidr {
    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// `ip` with IPv4-mapped IPv6 addresses (a dual-stack listener's IPv4 peers) as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client is counted and limited under: see [`vitals_std::limits::client_key`].
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    vitals_std::limits::client_key(ip)
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Proxies in `networks`.
    pub fn new(networks: Vec<Cidr>) -> Self {
        TrustedProxies(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: `peer` itself unless `peer` is a trusted proxy; then the right-most
    /// address of `X-Forwarded-For` (all such headers, in order) that is not a trusted proxy.
    /// Every proxy appends the address it received the request from, so entries left of the
    /// first untrusted one were written by the client and are ignored. When the header is
    /// missing, or an entry on the way does not parse, the last trusted hop is the client.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for entry in entries.iter().rev() {
            let Some(ip) = parse_forwarded(entry) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = e.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(a, _)| a.parse().ok())
            .map(canonical);
    }
    e.rsplit_once(':')
        .and_then(|(a, _)| a.parse::<std::net::Ipv4Addr>().ok())
        .map(IpAddr::V4)
}

/// Counts what each key holds (connections, streams) and refuses beyond a cap. Entries are
/// removed when their count returns to zero, so the table never outgrows what is held.
#[derive(Debug)]
pub(crate) struct KeyedCounter<K: Eq + Hash> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    cap: usize,
}

impl<K: Eq + Hash + Clone> KeyedCounter<K> {
    /// A counter allowing `cap` per key (0 = no cap).
    pub(crate) fn new(cap: usize) -> Self {
        KeyedCounter {
            counts: Arc::default(),
            cap,
        }
    }

    /// Takes one unit for `key`, or `None` when `key` already holds the cap. The unit is given
    /// back when the returned guard is dropped.
    pub(crate) fn try_acquire(&self, key: K) -> Option<Held<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if self.cap > 0 && *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held {
            counts: self.counts.clone(),
            key,
        })
    }

    /// What `key` holds now.
    #[cfg(test)]
    pub(crate) fn held(&self, key: &K) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }

    /// Number of keys holding something.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One unit held by a key of a [`KeyedCounter`]; given back on drop.
#[derive(Debug)]
pub(crate) struct Held<K: Eq + Hash> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Eq + Hash> Drop for Held<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_walks_right_to_left() {
        let proxies = TrustedProxies::new(vec![
            "127.0.0.1".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let mut h = HeaderMap::new();
        // Not a proxy: the header is ignored.
        h.insert("x-forwarded-for", HeaderValue::from_static("9.9.9.9"));
        assert_eq!(proxies.client_ip(ip("8.8.8.8"), &h), ip("8.8.8.8"));
        // Spoofed left part, real client, then an inner proxy.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.7"),
        );
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), ip("1.2.3.4"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::5]:443"),
        );
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::5"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, junk"));
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 10.0.0.2"),
        );
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.1"));
        h.remove("x-forwarded-for");
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        h.insert("x-forwarded-for", HeaderValue::from_static("5.6.7.8:9000"));
        assert_eq!(proxies.client_ip(ip("::ffff:127.0.0.1"), &h), ip("5.6.7.8"));
    }

    #[test]
    fn counters_cap_and_forget() {
        let c = KeyedCounter::new(2);
        let a = c.try_acquire(1u8).unwrap();
        let b = c.try_acquire(1u8).unwrap();
        assert!(c.try_acquire(1u8).is_none());
        let other = c.try_acquire(2u8).unwrap();
        assert_eq!((c.held(&1), c.keys()), (2, 2));
        drop((a, b, other));
        assert_eq!(c.keys(), 0);
        let unlimited = KeyedCounter::new(0);
        let held: Vec<_> = (0..100)
            .map(|_| unlimited.try_acquire(0u8).unwrap())
            .collect();
        assert_eq!(unlimited.held(&0), 100);
        drop(held);
    }
}
