//! Liveness and readiness probes answered even when every connection slot is taken.
//!
//! A connection that finds no slot (or whose client is at its connection cap) is not refused
//! blindly: if a small triage budget allows, its request head is read (at most 4 KiB, within a
//! short deadline). `GET`/`HEAD` of `/livez` or `/readyz` gets its real answer; anything else
//! gets `503` + `Retry-After: 1`. Triage has its own slots and at most two per client key, so a
//! client flooding connections cannot also hold the probes' way in; when triage is full too, the
//! connection gets the immediate 503 it always got.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vitals_std::http::RequestTimer;
use vitals_std::Vitals;

use crate::clients::{Held, KeyedCounter};

/// Connections triaged at once.
pub(crate) const TRIAGE_SLOTS: usize = 16;
/// Connections one client key may have in triage at once.
pub(crate) const TRIAGE_PER_CLIENT: usize = 2;
/// Longest request head read in triage.
const HEAD_BYTES: usize = 4096;

/// The answer to a connection refused for lack of a slot.
pub(crate) const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The triage budget; see the [module docs](self).
pub(crate) struct Triage {
    slots: Arc<Semaphore>,
    per_client: KeyedCounter<IpAddr>,
    timeout: Duration,
}

/// A connection's place in triage.
pub(crate) struct Ticket {
    _slot: OwnedSemaphorePermit,
    _client: Option<Held<IpAddr>>,
}

impl Triage {
    /// A budget whose connections have `timeout` to send their request head.
    pub(crate) fn new(timeout: Duration) -> Self {
        Triage {
            slots: Arc::new(Semaphore::new(TRIAGE_SLOTS)),
            per_client: KeyedCounter::new(TRIAGE_PER_CLIENT),
            timeout,
        }
    }

    /// A place for a connection of `client` (`None`: a trusted proxy, not capped per client).
    pub(crate) fn try_enter(&self, client: Option<IpAddr>) -> Option<Ticket> {
        let held = match client {
            Some(c) => Some(self.per_client.try_acquire(c)?),
            None => None,
        };
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(Ticket {
            _slot: slot,
            _client: held,
        })
    }

    /// Reads the request head of `stream` and answers it: the probe's answer, or 503.
    pub(crate) async fn answer(&self, mut stream: TcpStream, vitals: Vitals, ticket: Ticket) {
        let metrics = vitals.http_metrics();
        let head = tokio::time::timeout(self.timeout, read_head(&mut stream))
            .await
            .ok()
            .flatten();
        let probe = head.as_deref().and_then(parse_probe);
        match probe {
            Some((method, path)) => {
                let timer = RequestTimer::start(metrics);
                let (status, body): (u16, &str) = match path {
                    "/livez" => (200, "{\"status\":\"ok\"}"),
                    _ if vitals.is_ready() => (200, "{\"status\":\"ready\"}"),
                    _ => (503, "{\"status\":\"not ready\"}"),
                };
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Service Unavailable"
                };
                let mut response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if method == "GET" {
                    response.push_str(body);
                }
                let _ = stream.write_all(response.as_bytes()).await;
                timer.finish(method, path, status);
                tracing::debug!(method, path, status, "probe answered in triage");
            }
            None => {
                metrics.connections_rejected.inc();
                let _ = stream.write_all(REFUSED).await;
            }
        }
        let _ = stream.shutdown().await;
        // Read what the client still sends (bounded) so closing does not reset the connection
        // before it has read the answer.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for _ in 0..64 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        drop(ticket);
    }
}

/// Reads until the end of the request head; `None` on EOF, error or more than [`HEAD_BYTES`].
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(buf);
        }
        if buf.len() > HEAD_BYTES {
            return None;
        }
    }
}

/// `(method, path)` when the head is a probe: `GET`/`HEAD` of `/livez` or `/readyz` (a query
/// string is ignored), HTTP/1.x.
fn parse_probe(head: &[u8]) -> Option<(&'static str, &'static str)> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let method = match parts.next()? {
        "GET" => "GET",
        "HEAD" => "HEAD",
        _ => return None,
    };
    let target = parts.next()?;
    let path = match target.split('?').next()? {
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        _ => return None,
    };
    parts
        .next()
        .filter(|v| v.starts_with("HTTP/1."))
        .map(|_| (method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_recognised() {
        assert_eq!(
            parse_probe(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/livez"))
        );
        assert_eq!(
            parse_probe(b"HEAD /readyz?verbose HTTP/1.0\r\n\r\n"),
            Some(("HEAD", "/readyz"))
        );
        for other in [
            &b"GET /metrics HTTP/1.1\r\n\r\n"[..],
            b"POST /livez HTTP/1.1\r\n\r\n",
            b"GET /livez\r\n\r\n",
            b"GET /livezz HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_probe(other), None);
        }
    }

    #[test]
    fn triage_is_capped_per_client() {
        let t = Triage::new(Duration::from_secs(1));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..TRIAGE_PER_CLIENT)
            .map(|_| t.try_enter(Some(a)).unwrap())
            .collect();
        assert!(t.try_enter(Some(a)).is_none());
        let proxy: Vec<_> = (0..TRIAGE_SLOTS - TRIAGE_PER_CLIENT)
            .map(|_| t.try_enter(None).unwrap())
            .collect();
        assert!(t.try_enter(Some("10.0.0.2".parse().unwrap())).is_none());
        drop((held, proxy));
    }
}
