//! The `/metrics` handler: content negotiation (OpenMetrics only when `Accept` asks for it),
//! optional gzip (when `Accept-Encoding` allows it), optional bearer token compared in constant
//! time, and a body that streams the core's resumable cursor chunk by chunk.
//!
//! Invariant: once warm, a scrape allocates nothing for its body. Render buffers and deflate
//! states come from a pool and go back to it when hyper drops the chunk or the body.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use vitals_core::{Cursor, Format, RenderError};

use crate::registry::RuntimeRegistry;

/// Size of one render chunk (and of each pooled buffer).
pub const CHUNK_BYTES: usize = 64 * 1024;
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Reusable buffers and deflate states.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    buffers: Mutex<Vec<Vec<u8>>>,
    deflaters: Mutex<Vec<Compress>>,
}

impl Pool {
    fn take(&self) -> Vec<u8> {
        let mut v = self
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + 1024));
        v.clear();
        v
    }

    fn put(&self, v: Vec<u8>) {
        let mut b = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() < 16 {
            b.push(v);
        }
    }

    fn take_deflater(&self) -> Compress {
        match self
            .deflaters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
        {
            Some(mut c) => {
                c.reset();
                c
            }
            None => Compress::new(Compression::fast(), false),
        }
    }

    fn put_deflater(&self, c: Compress) {
        let mut d = self.deflaters.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() < 4 {
            d.push(c);
        }
    }
}

/// One frame of a response body: static bytes or a pooled buffer returned on drop.
#[derive(Debug)]
pub enum Chunk {
    /// Ordinary bytes.
    Bytes(Bytes),
    /// A pooled render buffer.
    Pooled(PooledBuf),
}

/// A pooled buffer lent to hyper for one frame.
pub struct PooledBuf {
    buf: Vec<u8>,
    pos: usize,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.buf.len())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

impl Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.remaining(),
            Chunk::Pooled(p) => p.buf.len() - p.pos,
        }
    }
    fn chunk(&self) -> &[u8] {
        match self {
            Chunk::Bytes(b) => b.chunk(),
            Chunk::Pooled(p) => &p.buf[p.pos..],
        }
    }
    fn advance(&mut self, cnt: usize) {
        match self {
            Chunk::Bytes(b) => b.advance(cnt),
            Chunk::Pooled(p) => p.pos = (p.pos + cnt).min(p.buf.len()),
        }
    }
}

impl From<Bytes> for Chunk {
    fn from(b: Bytes) -> Self {
        Chunk::Bytes(b)
    }
}

struct Shared {
    registry: RuntimeRegistry,
    pool: Arc<Pool>,
    refresh: Option<Box<dyn Fn() + Send + Sync>>,
}

/// The exposition endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Exposition {
    shared: Arc<Shared>,
    token: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition")
            .field("has_token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`Exposition::respond`] answered, for logs and tests.
pub type MetricsResponse = Response<MetricsBody>;

impl Exposition {
    /// An endpoint over `registry`; `refresh` runs before each scrape (e.g. process metrics).
    pub fn new(registry: RuntimeRegistry, refresh: Option<Box<dyn Fn() + Send + Sync>>) -> Self {
        Exposition {
            shared: Arc::new(Shared {
                registry,
                pool: Arc::new(Pool::default()),
                refresh,
            }),
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` (compared in constant time); `None` disables it.
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(|t| Arc::from(t.as_bytes()));
        self
    }

    /// The registry behind the endpoint.
    pub fn registry(&self) -> &RuntimeRegistry {
        &self.shared.registry
    }

    /// Runs the refresh hook (process metrics, breaker gauges).
    pub fn refresh(&self) {
        if let Some(f) = &self.shared.refresh {
            f()
        }
    }

    /// Whether a bearer token protects the endpoint.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `headers` carry the configured bearer token (always true without a token). An
    /// empty configured token matches nothing: a misconfiguration fails closed.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        crate::http::bearer_token(headers)
            .is_some_and(|given| crate::http::token_matches(given, token))
    }

    /// Answers a scrape: 405 for methods other than GET/HEAD, 401 without the right token, else
    /// 200 with the exposition in the negotiated format, gzipped when accepted.
    pub fn respond(&self, method: &Method, headers: &HeaderMap) -> MetricsResponse {
        if method != Method::GET && method != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                .with_header(header::ALLOW, "GET, HEAD");
        }
        if !self.authorized(headers) {
            return plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n")
                .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"");
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = Format::negotiate(accept);
        let gzip = accepts_gzip(headers);
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, format.content_type())
            .header(header::VARY, "Accept, Accept-Encoding")
            .header(header::CACHE_CONTROL, "no-store");
        if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
        }
        let body = if method == Method::HEAD {
            MetricsBody::full(Bytes::new())
        } else {
            self.refresh();
            MetricsBody::render(self.shared.clone(), format, gzip)
        };
        builder
            .body(body)
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response build failed\n"))
    }

    /// Renders the whole exposition into a string (for the `server_metrics` tool).
    pub fn render_to_string(&self, format: Format) -> String {
        self.refresh();
        self.shared.registry.render_to_string(format)
    }
}

trait WithHeader {
    fn with_header(self, name: header::HeaderName, value: &'static str) -> Self;
}

impl<B> WithHeader for Response<B> {
    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers_mut()
            .insert(name, HeaderValue::from_static(value));
        self
    }
}

fn plain(status: StatusCode, text: &'static str) -> MetricsResponse {
    let mut r = Response::new(MetricsBody::full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether `Accept-Encoding` allows gzip (with a non-zero quality), read by the core's quality
/// parser ([`vitals_core::format::qualities`]) that also negotiates the format.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(vitals_core::format::qualities)
        .any(|(coding, q)| (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0)
}

/// The `/metrics` response body.
pub struct MetricsBody {
    state: State,
}

impl std::fmt::Debug for MetricsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

enum State {
    Full(Option<Bytes>),
    Render(RenderState),
    Done,
}

struct RenderState {
    shared: Arc<Shared>,
    cursor: Cursor,
    gzip: Option<Gzip>,
}

struct Gzip {
    deflate: Option<Compress>,
    crc: Crc,
    header_sent: bool,
    finished: bool,
}

impl MetricsBody {
    /// A body of fixed bytes.
    pub fn full(bytes: Bytes) -> Self {
        MetricsBody {
            state: State::Full(Some(bytes)),
        }
    }

    fn render(shared: Arc<Shared>, format: Format, gzip: bool) -> Self {
        let gzip = gzip.then(|| Gzip {
            deflate: Some(shared.pool.take_deflater()),
            crc: Crc::new(),
            header_sent: false,
            finished: false,
        });
        MetricsBody {
            state: State::Render(RenderState {
                shared,
                cursor: Cursor::new(format),
                gzip,
            }),
        }
    }
}

impl RenderState {
    /// Renders the next chunk into a pooled buffer; `None` when the exposition is complete.
    fn next_plain(&mut self) -> Option<PooledBuf> {
        let pool = self.shared.pool.clone();
        let mut buf = pool.take();
        let n = render_chunk(&self.shared.registry, &mut self.cursor, &mut buf);
        if n == 0 {
            pool.put(buf);
            return None;
        }
        buf.truncate(n);
        Some(PooledBuf { buf, pos: 0, pool })
    }

    /// Renders and compresses until some output exists or the stream is finished.
    fn next_gzip(&mut self) -> Option<PooledBuf> {
        let pool = self.shared.pool.clone();
        let gz = self.gzip.as_mut()?;
        if gz.finished {
            return None;
        }
        let mut out = pool.take();
        if !gz.header_sent {
            out.extend_from_slice(&GZIP_HEADER);
            gz.header_sent = true;
        }
        let mut raw = pool.take();
        loop {
            let n = render_chunk(&self.shared.registry, &mut self.cursor, &mut raw);
            let deflate = gz.deflate.as_mut()?;
            if n > 0 {
                gz.crc.update(&raw[..n]);
                let mut input = &raw[..n];
                while !input.is_empty() {
                    out.reserve(input.len() / 2 + 64);
                    let before = deflate.total_in();
                    if deflate
                        .compress_vec(input, &mut out, FlushCompress::None)
                        .is_err()
                    {
                        break;
                    }
                    let used = (deflate.total_in() - before) as usize;
                    input = &input[used..];
                }
                if out.len() > GZIP_HEADER.len() {
                    break;
                }
            } else {
                loop {
                    out.reserve(1024);
                    match deflate.compress_vec(&[], &mut out, FlushCompress::Finish) {
                        Ok(Status::StreamEnd) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                out.extend_from_slice(&gz.crc.sum().to_le_bytes());
                out.extend_from_slice(&gz.crc.amount().to_le_bytes());
                gz.finished = true;
                if let Some(d) = gz.deflate.take() {
                    pool.put_deflater(d);
                }
                break;
            }
        }
        pool.put(raw);
        Some(PooledBuf {
            buf: out,
            pos: 0,
            pool,
        })
    }
}

/// Renders the next whole lines into `buf` (resized to a chunk); returns the byte count, 0 when
/// the exposition is complete. A line longer than a chunk grows the buffer once.
fn render_chunk(registry: &RuntimeRegistry, cursor: &mut Cursor, buf: &mut Vec<u8>) -> usize {
    let registry = registry.registry();
    if buf.len() < CHUNK_BYTES {
        buf.resize(CHUNK_BYTES, 0);
    }
    loop {
        match registry.render(cursor, buf) {
            Ok(n) => return n,
            Err(RenderError::BufferTooSmall { needed }) => buf.resize(needed, 0),
            // An error a later core adds: end the body rather than retry forever.
            Err(_) => return 0,
        }
    }
}

impl Body for MetricsBody {
    type Data = Chunk;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let next = match &mut this.state {
            State::Full(b) => b.take().filter(|b| !b.is_empty()).map(Chunk::Bytes),
            State::Render(r) => {
                let chunk = if r.gzip.is_some() {
                    r.next_gzip()
                } else {
                    r.next_plain()
                };
                chunk.map(Chunk::Pooled)
            }
            State::Done => None,
        };
        if next.is_none() {
            this.state = State::Done;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Full(b) => b.as_ref().is_none_or(|b| b.is_empty()),
            State::Render(_) => false,
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            State::Full(None) | State::Done => SizeHint::with_exact(0),
            State::Render(_) => SizeHint::default(),
        }
    }
}

impl Drop for MetricsBody {
    fn drop(&mut self) {
        if let State::Render(r) = &mut self.state {
            if let Some(d) = r.gzip.as_mut().and_then(|g| g.deflate.take()) {
                r.shared.pool.put_deflater(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryBuilder;
    use http_body_util::BodyExt;
    use std::io::Read;
    use vitals_core::Counter;

    fn endpoint() -> Exposition {
        static C: Counter = Counter::new();
        C.inc();
        let mut b = RegistryBuilder::new();
        b.register("scrapes", "Scrapes.", None, &C).unwrap();
        Exposition::new(b.build(), None)
    }

    async fn collect(r: MetricsResponse) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = r.into_body();
        while let Some(f) = body.frame().await {
            if let Ok(mut d) = f.unwrap().into_data() {
                while d.has_remaining() {
                    let c = d.chunk();
                    out.extend_from_slice(c);
                    let n = c.len();
                    d.advance(n);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn negotiates_and_gzips() {
        let e = endpoint();
        let mut h = HeaderMap::new();
        let r = e.respond(&Method::GET, &h);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            vitals_core::format::PROMETHEUS_CONTENT_TYPE
        );
        let text = String::from_utf8(collect(r).await).unwrap();
        assert!(text.contains("scrapes_total"), "{text}");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        );
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let r = e.respond(&Method::GET, &h);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            vitals_core::format::OPENMETRICS_CONTENT_TYPE
        );
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let gz = collect(r).await;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn token_and_method() {
        let e = endpoint().with_token(Some("s3cret"));
        let mut h = HeaderMap::new();
        assert_eq!(
            e.respond(&Method::GET, &h).status(),
            StatusCode::UNAUTHORIZED
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert_eq!(
            e.respond(&Method::GET, &h).status(),
            StatusCode::UNAUTHORIZED
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(e.respond(&Method::GET, &h).status(), StatusCode::OK);
        let empty = endpoint().with_token(Some(""));
        let mut bare = HeaderMap::new();
        assert!(!empty.authorized(&bare), "an empty token must fail closed");
        bare.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(!empty.authorized(&bare), "an empty token must fail closed");
        assert_eq!(
            e.respond(&Method::POST, &h).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    /// `Accept-Encoding` is read by the core's quality parser: a zero or malformed quality
    /// refuses, `*` stands for gzip, every header line counts.
    #[test]
    fn gzip_follows_accept_encoding_qualities() {
        let accepts = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            accepts_gzip(&h)
        };
        assert!(!accepts(&[]));
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br, GZIP;q=0.5"]));
        assert!(accepts(&["*;q=0.001"]));
        assert!(accepts(&["br", "gzip"]));
        assert!(!accepts(&["gzip;q=0, br"]));
        assert!(!accepts(&["gzip;q=0.000"]));
        assert!(!accepts(&["gzip;q=abc"]));
        assert!(!accepts(&["identity, br;q=1"]));
    }
}
