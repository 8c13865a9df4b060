//! Prometheus text for `GET /metrics`: the gateway's own counters, and what
//! the HTTP layer sees (decisions by outcome, agent and tool, request
//! durations by route, reloads). Labels name only declared agents and tools.

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Histogram bucket bounds (seconds).
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// A histogram of durations.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// What the HTTP layer counts.
#[derive(Default)]
pub struct Stats {
    decisions: Mutex<HashMap<(String, String, String), u64>>,
    decision_time: Mutex<Histogram>,
    routes: Mutex<BTreeMap<String, Histogram>>,
    /// Policy reloads that loaded.
    pub reloads_ok: AtomicU64,
    /// Policy reloads refused.
    pub reloads_refused: AtomicU64,
}

impl Stats {
    /// Counts a decision of `/v1/calls` (`agent` and `tool` as declared names, or `other`).
    pub fn decision(&self, outcome: &str, agent: &str, tool: &str, secs: f64) {
        let mut d = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
        *d.entry((outcome.to_string(), agent.to_string(), tool.to_string()))
            .or_default() += 1;
        drop(d);
        self.decision_time
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(secs);
    }

    fn route(&self, route: &str, secs: f64) {
        let mut r = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match r.get_mut(route) {
            Some(h) => h.observe(secs),
            None => {
                let mut h = Histogram::default();
                h.observe(secs);
                r.insert(route.to_string(), h);
            }
        }
    }
}

/// Middleware: times each request by its route template.
pub async fn time_request(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let start = Instant::now();
    let response = next.run(req).await;
    app.stats.route(&route, start.elapsed().as_secs_f64());
    response
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The Prometheus text exposition.
pub async fn render(app: &App) -> String {
    let mut out = String::new();
    for (name, help, value) in app.host.gateway.metrics().counters() {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let s = &app.stats;
    family(
        &mut out,
        "toolgate_decisions_total",
        "counter",
        "calls decided, by outcome, agent and tool",
    );
    let decisions = s
        .decisions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut decisions: Vec<_> = decisions.into_iter().collect();
    decisions.sort();
    for ((outcome, agent, tool), n) in decisions {
        let _ = writeln!(
            out,
            "toolgate_decisions_total{{outcome=\"{outcome}\",agent=\"{agent}\",tool=\"{tool}\"}} {n}"
        );
    }
    family(
        &mut out,
        "toolgate_decision_duration_seconds",
        "histogram",
        "time to authorize a call, journal included",
    );
    s.decision_time
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .render(&mut out, "toolgate_decision_duration_seconds", "");
    family(
        &mut out,
        "toolgate_http_request_duration_seconds",
        "histogram",
        "HTTP request durations by route",
    );
    let routes = s.routes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (route, h) in &routes {
        let labels = format!("route=\"{route}\"");
        h.render(&mut out, "toolgate_http_request_duration_seconds", &labels);
    }
    let pending = app.host.gateway.waiting().await.map(|w| w.len());
    let kill = app.host.gateway.kill_scopes().await.map(|k| k.len());
    gauges(app, &mut out, pending.ok(), kill.ok());
    out
}

/// `pending` and `kill` are `None` when the state store could not say.
fn gauges(app: &App, out: &mut String, pending: Option<usize>, kill: Option<usize>) {
    let s = &app.stats;
    family(
        out,
        "toolgate_pending_approvals",
        "gauge",
        "calls waiting for approval",
    );
    let _ = writeln!(
        out,
        "toolgate_pending_approvals {}",
        pending.map_or("NaN".to_string(), |n| n.to_string())
    );
    family(
        out,
        "toolgate_kill_switch_engaged",
        "gauge",
        "engaged kill switch scopes",
    );
    let _ = writeln!(
        out,
        "toolgate_kill_switch_engaged {}",
        kill.map_or("NaN".to_string(), |n| n.to_string())
    );
    family(
        out,
        "toolgate_store_up",
        "gauge",
        "whether the state store answers (1) or not (0)",
    );
    let up = u8::from(app.host.gateway.store().healthy());
    let _ = writeln!(out, "toolgate_store_up {up}");
    family(
        out,
        "toolgate_budget_exhausted_total",
        "counter",
        "budgets found exhausted (journal records, all time)",
    );
    let _ = writeln!(
        out,
        "toolgate_budget_exhausted_total {}",
        app.host.index.budget_exhausted()
    );
    family(
        out,
        "toolgate_policy_reloads_total",
        "counter",
        "policy reloads by result",
    );
    let ok = s.reloads_ok.load(Ordering::Relaxed);
    let refused = s.reloads_refused.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "toolgate_policy_reloads_total{{result=\"loaded\"}} {ok}"
    );
    let _ = writeln!(
        out,
        "toolgate_policy_reloads_total{{result=\"refused\"}} {refused}"
    );
    family(
        out,
        "toolgate_uptime_seconds",
        "gauge",
        "seconds since the server started",
    );
    let up = toolgate_runtime::host::now_ms().saturating_sub(app.host.started_at) / 1000;
    let _ = writeln!(out, "toolgate_uptime_seconds {up}");
}
