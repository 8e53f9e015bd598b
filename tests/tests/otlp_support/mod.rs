//! An OTLP/HTTP trace receiver inside the test: loopback, the protobuf bodies decoded with
//! `opentelemetry-proto`. Shared by the trace tests (`otel_export`, `otel_propagation`).
#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// One OTLP/HTTP export: the path and the decoded request.
pub(crate) type Export = (String, ExportTraceServiceRequest);

/// How the receiver answers an export.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// 200 with an empty `ExportTraceServiceResponse` after this long; the export goes to the
    /// channel once answered.
    After(Duration),
    /// Never: the request is read and the connection held open; nothing goes to the channel.
    Never,
}

/// Accepts OTLP/HTTP posts on a loopback port until the test ends; every export answered 200
/// goes to the channel (decoded).
pub(crate) fn receiver(answer: Answer) -> (u16, mpsc::Receiver<Export>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let decoded = ExportTraceServiceRequest::decode(body.as_slice())
                        .expect("an OTLP ExportTraceServiceRequest");
                    match answer {
                        Answer::Never => {
                            // Hold the connection until the exporter gives up on it.
                            let mut rest = Vec::new();
                            let _ = reader.read_to_end(&mut rest);
                            return;
                        }
                        Answer::After(delay) => {
                            std::thread::sleep(delay);
                            if reader
                                .get_mut()
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                                )
                                .is_ok()
                            {
                                let _ = tx.send((path, decoded));
                            }
                        }
                    }
                }
            });
        }
    });
    (port, rx)
}

/// A received span with the `service.name` of its resource.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// `service.name`.
    pub(crate) service: String,
    /// The span.
    pub(crate) span: Span,
}

/// Moves every export received so far into `seen` (checking the path); returns how many spans
/// arrived.
pub(crate) fn drain(exports: &mpsc::Receiver<Export>, seen: &mut Vec<Received>) -> usize {
    let mut n = 0;
    while let Ok((path, req)) = exports.try_recv() {
        assert_eq!(path, "/v1/traces");
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    n += 1;
                    seen.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
    }
    n
}

/// Lowercase hex of an id.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The string form of attribute `k` of `span` (`""` when absent).
pub(crate) fn attr(span: &Span, k: &str) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == k)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            Value::BoolValue(b) => b.to_string(),
            Value::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}
