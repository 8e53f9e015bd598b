//! Assembles the comparison table from criterion's estimates, the allocation counts and the load
//! test, prints it, and writes the same rows as JSON.
//!
//! Usage: `report CRITERION_DIR ALLOCS_JSONL LOADTEST_JSON OUT_JSON`
//! (a missing allocation or load-test file is reported as missing, not invented).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One row: an operation with vitals' figure and the best peer's.
struct Row {
    op: String,
    unit: &'static str,
    vitals_ns: Option<f64>,
    best_peer: Option<String>,
    best_peer_ns: Option<f64>,
    vitals_allocs: Option<f64>,
    peer_allocs: BTreeMap<String, f64>,
    baseline_ns: Option<f64>,
    target: &'static str,
    met: Option<bool>,
}

fn median_ns(dir: &Path, group: &str, peer: &str) -> Option<f64> {
    let p = dir
        .join(group)
        .join(peer)
        .join("new")
        .join("estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn peers(dir: &Path, group: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join(group))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("new").join("estimates.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn is_ours(peer: &str) -> bool {
    peer == "vitals" || peer.starts_with("vitals-") || peer == "bare-atomic"
}

/// (group, label in the table, ns per line?, target text).
const OPS: &[(&str, &str, bool, &str)] = &[
    ("counter_inc", "counter inc", false, "<= 1.1x bare atomic"),
    ("gauge_set", "gauge set", false, ""),
    (
        "histogram_observe",
        "histogram observe (10 buckets)",
        false,
        "<= best peer",
    ),
    (
        "histogram_observe_exemplar",
        "histogram observe with exemplar (10 buckets)",
        false,
        "",
    ),
    (
        "labelled_inc_typed",
        "labelled inc, typed labels",
        false,
        "",
    ),
    ("labelled_inc_str", "labelled inc, string labels", false, ""),
    (
        "labelled_observe_typed",
        "labelled observe, typed labels",
        false,
        "",
    ),
    (
        "render_fleet",
        "render fleet (per line)",
        true,
        ">= 2x faster per line than best peer",
    ),
    (
        "render_fleet_typed",
        "render fleet, typed families (per line)",
        true,
        ">= 2x faster per line than best peer",
    ),
    (
        "render_100k",
        "render 100k-series family (per line)",
        true,
        ">= 2x faster per line than best peer",
    ),
    ("contended_counter", "2 threads, one counter", false, ""),
    ("contended_histogram", "2 threads, one histogram", false, ""),
    (
        "contended_family",
        "2 threads, one family (string labels)",
        false,
        "",
    ),
    (
        "token_bucket_allow",
        "token bucket allow (fake clock)",
        false,
        "<= governor",
    ),
    (
        "token_bucket_allow_quanta",
        "token bucket allow (quanta clock)",
        false,
        "<= governor",
    ),
    ("token_bucket_deny", "token bucket deny", false, ""),
    (
        "keyed_limiter_hit",
        "keyed limiter hit (64 clients)",
        false,
        "",
    ),
    (
        "breaker_closed",
        "breaker admit + record (closed)",
        false,
        "",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [crit, allocs, load, out] = args.as_slice() else {
        eprintln!("usage: report CRITERION_DIR ALLOCS_JSONL LOADTEST_JSON OUT_JSON");
        std::process::exit(2);
    };
    let crit = Path::new(crit);

    // (group, peer) → (allocs per op, lines)
    let mut counted: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(allocs) {
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                let key = (
                    v["group"].as_str().unwrap_or("").to_string(),
                    v["peer"].as_str().unwrap_or("").to_string(),
                );
                counted.insert(
                    key,
                    (
                        v["allocs_per_op"].as_f64().unwrap_or(f64::NAN),
                        v["lines"].as_u64().unwrap_or(1),
                    ),
                );
            }
        }
    }
    let lines_of = |group: &str, peer: &str| -> u64 {
        let g = if group == "render_fleet_typed" && peer != "vitals" {
            "render_fleet"
        } else {
            group
        };
        counted
            .get(&(g.to_string(), peer.to_string()))
            .map_or(1, |c| c.1.max(1))
    };

    let mut rows = Vec::new();
    for &(group, label, per_line, target) in OPS {
        // The typed fleet is compared with the peers' fleet (same series, same values).
        let peer_group = if group == "render_fleet_typed" {
            "render_fleet"
        } else {
            group
        };
        let scale = |g: &str, p: &str, ns: f64| {
            if per_line {
                ns / lines_of(g, p) as f64
            } else {
                ns
            }
        };
        let vitals_ns = median_ns(crit, group, "vitals").map(|ns| scale(group, "vitals", ns));
        let mut best: Option<(String, f64)> = None;
        let mut peer_allocs = BTreeMap::new();
        for p in peers(crit, peer_group).into_iter().filter(|p| !is_ours(p)) {
            if let Some(ns) = median_ns(crit, peer_group, &p).map(|ns| scale(peer_group, &p, ns)) {
                if best.as_ref().is_none_or(|b| ns < b.1) {
                    best = Some((p.clone(), ns));
                }
            }
            if let Some(a) = counted.get(&(peer_group.to_string(), p.clone())) {
                peer_allocs.insert(p, a.0);
            }
        }
        let baseline_ns = median_ns(crit, group, "bare-atomic");
        let vitals_allocs = counted
            .get(&(group.to_string(), "vitals".to_string()))
            .map(|c| c.0);
        let met = match (group, vitals_ns) {
            ("counter_inc", Some(v)) => baseline_ns.map(|b| v <= 1.1 * b),
            (_, Some(v)) if !target.is_empty() => {
                best.as_ref()
                    .map(|b| if per_line { v * 2.0 <= b.1 } else { v <= b.1 })
            }
            _ => None,
        };
        rows.push(Row {
            op: label.to_string(),
            unit: if per_line { "ns/line" } else { "ns/op" },
            vitals_ns,
            best_peer: best.as_ref().map(|b| b.0.clone()),
            best_peer_ns: best.map(|b| b.1),
            vitals_allocs,
            peer_allocs,
            baseline_ns,
            target,
            met,
        });
        // The chunked render, as a server streams it, gets a row of its own.
        if per_line && group != "render_fleet_typed" {
            if let Some(ns) = median_ns(crit, group, "vitals-chunked") {
                let last = rows.last().expect("row just pushed");
                let v = ns / lines_of(group, "vitals-chunked") as f64;
                let met = last.best_peer_ns.map(|b| v * 2.0 <= b);
                let (bp, bns, pa) = (
                    last.best_peer.clone(),
                    last.best_peer_ns,
                    last.peer_allocs.clone(),
                );
                rows.push(Row {
                    op: format!("{label}, 64 KiB chunks"),
                    unit: "ns/line",
                    vitals_ns: Some(v),
                    best_peer: bp,
                    best_peer_ns: bns,
                    vitals_allocs: counted
                        .get(&(group.to_string(), "vitals-chunked".to_string()))
                        .map(|c| c.0),
                    peer_allocs: pa,
                    baseline_ns: None,
                    target,
                    met,
                });
            }
        }
    }

    // The server load test: throughput as ns per call (1e9 / calls per second), scrape latency.
    let load: Option<Value> = std::fs::read_to_string(load)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut server_rows = Vec::new();
    if let Some(l) = &load {
        let get = |who: &str, k: &str| l[who][k].as_f64();
        let per_call = |who: &str| {
            get(who, "calls_per_s")
                .filter(|&c| c > 0.0)
                .map(|c| 1e9 / c)
        };
        server_rows.push((
            "server tools/call (ns per call = 1e9 / calls/s)",
            per_call("vitals"),
            per_call("python"),
            ">= 10x Python throughput",
            10.0,
        ));
        server_rows.push((
            "server /metrics scrape p50",
            get("vitals", "scrape_p50_ns"),
            get("python", "scrape_p50_ns"),
            "",
            0.0,
        ));
        server_rows.push((
            "server /metrics scrape p99",
            get("vitals", "scrape_p99_ns"),
            get("python", "scrape_p99_ns"),
            "",
            0.0,
        ));
    }
    for (op, v, p, target, factor) in server_rows {
        let met = if factor > 0.0 {
            v.zip(p).map(|(v, p)| v * factor <= p)
        } else {
            None
        };
        rows.push(Row {
            op: op.to_string(),
            unit: "ns",
            vitals_ns: v,
            best_peer: p.map(|_| "python-fastmcp".to_string()),
            best_peer_ns: p,
            vitals_allocs: None,
            peer_allocs: BTreeMap::new(),
            baseline_ns: None,
            target,
            met,
        });
    }

    let fmt = |x: Option<f64>| match x {
        Some(v) if v >= 100_000.0 => format!("{:.0}", v),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "missing".into(),
    };
    println!(
        "| operation | unit | vitals | best peer | best peer | vitals/best | vitals allocs | bare atomic | target | met |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---|---|");
    let mut json_rows = Vec::new();
    for r in &rows {
        let ratio = r.vitals_ns.zip(r.best_peer_ns).map(|(v, b)| v / b);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op,
            r.unit,
            fmt(r.vitals_ns),
            r.best_peer.as_deref().unwrap_or("-"),
            fmt(r.best_peer_ns),
            ratio.map_or("-".into(), |x| format!("{x:.2}")),
            r.vitals_allocs.map_or("-".into(), |a| format!("{a}")),
            r.baseline_ns.map_or("-".into(), |b| format!("{b:.2}")),
            if r.target.is_empty() { "-" } else { r.target },
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            }
        );
        json_rows.push(json!({
            "op": r.op,
            "unit": r.unit,
            "vitals_ns": r.vitals_ns,
            "best_peer": r.best_peer,
            "best_peer_ns": r.best_peer_ns,
            "ratio": ratio,
            "vitals_allocs": r.vitals_allocs,
            "peer_allocs": r.peer_allocs,
            "baseline_ns": r.baseline_ns,
            "target": if r.target.is_empty() { Value::Null } else { json!(r.target) },
            "target_met": r.met,
        }));
    }
    if load.is_none() {
        println!("\nserver load test: missing (no {})", args[2]);
    } else if let Some(l) = &load {
        println!(
            "\nserver load test: {}",
            serde_json::to_string(l).unwrap_or_default()
        );
    }
    let doc = Value::Array(json_rows);
    std::fs::write(out, serde_json::to_string_pretty(&doc).expect("json")).expect("write report");
    eprintln!("wrote {out}");
}
