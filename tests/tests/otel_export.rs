//! Trace export over OTLP/HTTP: an OTLP receiver inside the test (loopback, the protobuf decoded
//! with `opentelemetry-proto`) receives the server's SERVER spans, with the parent the client put
//! in `_meta.traceparent`; without an endpoint, nothing arrives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;
use vitals_tests::*;

/// One OTLP/HTTP export: the path and the decoded request.
type Export = (String, ExportTraceServiceRequest);

/// Accepts OTLP/HTTP posts on a loopback port until the test ends, answering 200 with an empty
/// `ExportTraceServiceResponse`; every decoded body goes to the channel.
fn receiver() -> (u16, mpsc::Receiver<Export>) {
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
                    let _ = tx.send((path, decoded));
                    let _ = reader.get_mut().write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, rx)
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Calls `server_health` with a trace context in `_meta`.
fn traced_call(server: &Server) {
    let mut s = McpSession::open(server.addr);
    let r = s.call(
        "tools/call",
        json!({"name": "server_health", "arguments": {},
            "_meta": {"traceparent": format!("00-{TRACE_ID}-{PARENT_ID}-01")}}),
    );
    assert_eq!(r["result"]["isError"], json!(false), "{r}");
}

#[test]
fn server_spans_arrive_over_otlp_http_with_the_meta_parent() {
    let (port, exports) = receiver();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "vitals-under-test"),
        ],
    );
    traced_call(&server);
    let mut seen = Vec::new();
    let span = wait_for(Duration::from_secs(60), || {
        while let Ok((path, req)) = exports.try_recv() {
            assert_eq!(path, "/v1/traces");
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.clone())
                    .map(|v| format!("{:?}", v.value));
                for ss in rs.scope_spans {
                    for sp in ss.spans {
                        seen.push((service.clone(), sp));
                    }
                }
            }
        }
        seen.iter()
            .find(|(_, s)| s.name == "tools/call server_health")
            .cloned()
    });
    let (service, span) = span.unwrap_or_else(|| {
        panic!(
            "no `tools/call server_health` span within 60 s; got {:?}",
            seen.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
        )
    });
    assert!(
        service
            .as_deref()
            .unwrap_or("")
            .contains("vitals-under-test"),
        "{service:?}"
    );
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.clone())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(attr("mcp.method.name").contains("tools/call"));
    assert!(attr("gen_ai.tool.name").contains("server_health"));
    assert!(attr("network.transport").contains("tcp"));
    assert!(
        attr("mcp.session.id").len() > 8,
        "{}",
        attr("mcp.session.id")
    );
    // initialize and tools/call at least, every one a SERVER span.
    assert!(seen.iter().all(|(_, s)| s.kind == SpanKind::Server as i32));
}

#[test]
fn disabled_or_none_exports_nothing() {
    // The endpoint names the receiver, but the SDK is disabled or the exporter is `none`.
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let (port, exports) = receiver();
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = Server::start_with_env(
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                off,
            ],
        );
        traced_call(&server);
        drop(server);
        assert!(
            exports.recv_timeout(Duration::from_secs(2)).is_err(),
            "{off:?}: spans were exported"
        );
    }
}
