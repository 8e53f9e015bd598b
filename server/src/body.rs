//! Reading and vetting an `/mcp` request body before rmcp sees it.
//!
//! - [`read_body`]: the whole body within a deadline, copied frame by frame into one buffer that
//!   never grows past the size limit, with a bound on the number of frames (a body trickled in
//!   one-byte chunks costs its size, not a `Bytes` per byte).
//! - [`prepass`]: one pass over the bytes, building nothing, that bounds nesting depth and the
//!   number of elements; rmcp's parse of a message buffers every element several times, so this
//!   keeps its memory a small multiple of the body size.
//! - [`envelope`]: the JSON-RPC shape (`jsonrpc: "2.0"`; request, notification, response or
//!   error) and the id, so a message rmcp cannot accept is a JSON-RPC -32600, not a 415.
//! - [`ParseGate`]: at most a few large bodies parsed at once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of one request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Most data frames (hyper yields one per read or per chunk).
    pub max_frames: usize,
    /// Time allowed for the whole body, from the end of the headers.
    pub timeout: Duration,
}

impl BodyLimits {
    /// Limits for bodies of at most `max_bytes`, read within `timeout`; the frame bound allows an
    /// average frame of 64 bytes (at least 1024 frames).
    pub fn new(max_bytes: usize, timeout: Duration) -> Self {
        BodyLimits {
            max_bytes,
            max_frames: (max_bytes / 64).max(1024),
            timeout,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (declared or sent): 413.
    TooLarge,
    /// Sent in more frames than allowed: 400.
    TooManyFrames,
    /// Not complete before the deadline: 408.
    Timeout,
    /// The connection failed or the framing was invalid: 400.
    Read,
}

impl BodyError {
    /// The HTTP status and the text to answer with.
    pub(crate) fn status(self) -> (http::StatusCode, &'static str) {
        use http::StatusCode as S;
        match self {
            BodyError::TooLarge => (S::PAYLOAD_TOO_LARGE, "request body exceeds the limit\n"),
            BodyError::TooManyFrames => (
                S::BAD_REQUEST,
                "request body sent in too many small pieces\n",
            ),
            BodyError::Timeout => (
                S::REQUEST_TIMEOUT,
                "request body not received within the body timeout\n",
            ),
            BodyError::Read => (S::BAD_REQUEST, "could not read the request body\n"),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().1.trim_end())
    }
}

impl std::error::Error for BodyError {}

/// Reads `body` (whose `Content-Length` was `declared`, if any) into one buffer within `limits`.
pub(crate) async fn read_body<B>(
    body: B,
    declared: Option<u64>,
    limits: &BodyLimits,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let deadline = tokio::time::Instant::now() + limits.timeout;
    // Never trust the declared length for the first allocation beyond a small buffer: a client
    // may declare 1 MiB and send one byte.
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = 0usize;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Read),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        frames += 1;
        if frames > limits.max_frames {
            return Err(BodyError::TooManyFrames);
        }
        let needed = buf.len() + data.remaining();
        if needed > limits.max_bytes {
            return Err(BodyError::TooLarge);
        }
        if needed > buf.capacity() {
            let target = (buf.capacity() * 2)
                .max(needed)
                .max(4096)
                .min(limits.max_bytes);
            buf.reserve_exact(target - buf.len());
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            buf.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    Ok(Bytes::from(buf))
}

/// Structural limits of a JSON body.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Most elements: each array and object, and each comma between array elements or object
    /// members (about one per value).
    pub max_elements: usize,
}

/// What [`prepass`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StructureError {
    /// Nested deeper than the limit.
    TooDeep,
    /// More elements than the limit.
    TooManyElements,
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StructureError::TooDeep => "the message is nested too deeply",
            StructureError::TooManyElements => "the message has too many elements",
        })
    }
}

impl std::error::Error for StructureError {}

/// Scans `bytes` once, outside strings, counting `{`, `[` and `,` and tracking nesting depth;
/// refuses beyond `limits`. It does not validate the JSON (serde does, afterwards, bounded by
/// this pass), allocates nothing and costs about a `memchr` per byte.
pub(crate) fn prepass(bytes: &[u8], limits: &JsonLimits) -> Result<(), StructureError> {
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                elements += 1;
                if depth > limits.max_depth {
                    return Err(StructureError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => elements += 1,
            _ => continue,
        }
        if elements > limits.max_elements {
            return Err(StructureError::TooManyElements);
        }
    }
    Ok(())
}

/// Whether `bytes` are one syntactically valid JSON document (serde, building nothing).
pub(crate) fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

/// The JSON-RPC message kind, by the keys present (as rmcp classifies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `method` and `id`.
    Request,
    /// `method`, no `id`.
    Notification,
    /// `result`.
    Response,
    /// `error`.
    Error,
}

/// The envelope of a JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope {
    /// What kind of message.
    pub kind: Kind,
    /// The id (a string or an integer) for requests, responses and errors that carry one.
    pub id: Option<Value>,
    /// The method of a request or notification.
    pub method: Option<String>,
}

/// A valid JSON document that is not a JSON-RPC 2.0 message; `id` is its id when one could be
/// read (to echo in the error).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NotJsonRpc {
    /// The id, if the document had a usable one.
    pub id: Option<Value>,
}

impl fmt::Display for NotJsonRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a JSON-RPC 2.0 message")
    }
}

impl std::error::Error for NotJsonRpc {}

#[derive(Default)]
struct Raw {
    object: bool,
    version_ok: bool,
    id: Option<Value>,
    has_id: bool,
    method: Option<Value>,
    result: bool,
    error: bool,
}

impl<'de> de::Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut raw = Raw {
                    object: true,
                    ..Raw::default()
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "jsonrpc" => raw.version_ok = map.next_value::<Value>()? == "2.0",
                        "id" => {
                            raw.has_id = true;
                            raw.id = Some(map.next_value::<Value>()?);
                        }
                        "method" => raw.method = Some(map.next_value::<Value>()?),
                        "result" => {
                            raw.result = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        "error" => {
                            raw.error = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
                Ok(Raw::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
                Ok(Raw::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
                Ok(Raw::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
                Ok(Raw::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Raw, E> {
                Ok(Raw::default())
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::default())
            }
        }
        d.deserialize_any(V)
    }
}

fn usable_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// Reads the envelope of `bytes` (already known to be valid JSON, within [`prepass`] limits).
pub(crate) fn envelope(bytes: &[u8]) -> Result<Envelope, NotJsonRpc> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|_| NotJsonRpc { id: None })?;
    let id = raw.id.filter(usable_id);
    let bad = |id: Option<Value>| Err(NotJsonRpc { id });
    if !raw.object || !raw.version_ok {
        return bad(id);
    }
    let method = match raw.method {
        Some(Value::String(m)) => Some(m),
        Some(_) => return bad(id),
        None => None,
    };
    let kind = match (method.is_some(), raw.has_id, raw.result, raw.error) {
        (true, true, false, false) => Kind::Request,
        (true, false, false, false) => Kind::Notification,
        (false, _, true, false) => Kind::Response,
        (false, _, false, true) => Kind::Error,
        _ => return bad(id),
    };
    if kind == Kind::Request && id.is_none() {
        return bad(None);
    }
    Ok(Envelope { kind, id, method })
}

/// A JSON-RPC error body: `{"jsonrpc":"2.0","id":ID,"error":{"code":CODE,"message":MESSAGE}}`.
pub(crate) fn jsonrpc_error(id: Option<&Value>, code: i64, message: &str) -> Bytes {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message}});
    Bytes::from(body.to_string())
}

/// JSON-RPC "Parse error".
pub(crate) const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
pub(crate) const INVALID_REQUEST: i64 = -32600;

/// Bounds how many large bodies are parsed (by the pre-pass and by rmcp) at once: each parse
/// holds its body plus rmcp's copies and tree.
#[derive(Debug, Clone)]
pub struct ParseGate {
    permits: Arc<Semaphore>,
    /// Bodies at least this large need a permit.
    pub threshold: usize,
    /// How long a large body may wait for a permit (then 503).
    pub wait: Duration,
}

impl ParseGate {
    /// At most `concurrent` bodies of `threshold` bytes or more parsed at once.
    pub fn new(concurrent: usize, threshold: usize, wait: Duration) -> Self {
        ParseGate {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            threshold,
            wait,
        }
    }

    /// A permit for a body of `len` bytes: `Ok(None)` for small bodies, [`GateClosed`] when
    /// none came within the wait.
    pub async fn enter(&self, len: usize) -> Result<Option<OwnedSemaphorePermit>, GateClosed> {
        if len < self.threshold {
            return Ok(None);
        }
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(Some(p)),
            _ => Err(GateClosed),
        }
    }
}

/// No parse permit came in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateClosed;

impl fmt::Display for GateClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many large requests are being parsed")
    }
}

impl std::error::Error for GateClosed {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::json;

    const LIMITS: JsonLimits = JsonLimits {
        max_depth: 4,
        max_elements: 10,
    };

    #[test]
    fn prepass_bounds_depth_and_elements() {
        assert_eq!(prepass(br#"{"a":[1,2,{"b":[]}]}"#, &LIMITS), Ok(()));
        assert_eq!(
            prepass(b"[[[[[1]]]]]", &LIMITS),
            Err(StructureError::TooDeep)
        );
        assert_eq!(
            prepass(b"[0,0,0,0,0,0,0,0,0,0,0]", &LIMITS),
            Err(StructureError::TooManyElements)
        );
        // Brackets and commas inside strings do not count, escaped quotes do not end them.
        assert_eq!(
            prepass(br#"{"a":"[[[[[,,,,,,,,,,,,\"[[[[[[["}"#, &LIMITS),
            Ok(())
        );
    }

    #[test]
    fn envelopes() {
        let e = envelope(br#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#).unwrap();
        assert_eq!(
            (e.kind, e.id, e.method.as_deref()),
            (Kind::Request, Some(json!("x")), Some("ping"))
        );
        let n = envelope(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, Kind::Notification);
        let r = envelope(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert_eq!((r.kind, r.id), (Kind::Response, Some(json!(3))));
        for bad in [
            &br#"{"id":1,"method":"ping"}"#[..],
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","result":1}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            b"[1,2]",
            b"42",
            b"\"s\"",
        ] {
            assert!(envelope(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            envelope(br#"{"id":9,"method":"ping"}"#).unwrap_err().id,
            Some(json!(9))
        );
    }

    fn limits(max: usize) -> BodyLimits {
        BodyLimits {
            max_bytes: max,
            max_frames: 8,
            timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        let full = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(read_body(full, Some(5), &limits(5)).await.unwrap(), "hello");
        let full = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(
            read_body(full, Some(6), &limits(5)).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_body(Pieces(8), None, &limits(100))
                .await
                .unwrap()
                .len(),
            8
        );
        assert_eq!(
            read_body(Pieces(9), None, &limits(100)).await,
            Err(BodyError::TooManyFrames)
        );
        assert_eq!(
            read_body(Pieces(6), None, &limits(5)).await,
            Err(BodyError::TooLarge)
        );
    }

    #[tokio::test]
    async fn stalled_bodies_time_out() {
        let l = BodyLimits {
            timeout: Duration::from_millis(50),
            ..limits(10)
        };
        assert_eq!(read_body(Stalled, None, &l).await, Err(BodyError::Timeout));
    }

    type Frame = hyper::body::Frame<Bytes>;
    type Poll = std::task::Poll<Option<Result<Frame, std::convert::Infallible>>>;

    /// A body of `n` one-byte frames.
    struct Pieces(usize);

    impl hyper::body::Body for Pieces {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> Poll {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    /// A body that never sends anything.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> Poll {
            std::task::Poll::Pending
        }
    }
}
