//! The client-facing side of the gateway: one MCP server made of the gateway's own tools and the
//! tools, prompts and resources of every upstream that is up.
//!
//! Invariants:
//! - Names are resolved from one routing table, rebuilt whenever an upstream comes up, goes
//!   down or changes a list; clients are told (`list_changed`) when what they see changes.
//! - A name listed by more than one source is served by the first in a fixed order (the
//!   gateway's own tools, then upstreams in configuration order); the others are hidden,
//!   counted in `mcp_gateway_name_conflicts` and logged.
//! - Nothing is cached but the lists: every call, read and prompt goes to the upstream.
//! - Every result is valid for the client's revision: an upstream's untyped result is marked
//!   `resultType: "complete"` (rmcp removes it again for legacy clients), and an input-required
//!   result never reaches a legacy client (the gateway asks it the questions itself).

#![allow(deprecated)] // logging and subscriptions are deprecated by 2026-07-28; forwarded for 2025-11-25.

use crate::series::Exact as _;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use rmcp::model::*;
use rmcp::service::{
    MaybeSendFuture, NotificationContext, Peer, RequestContext, RoleServer, SubscriptionContext,
    SubscriptionSink,
};
use rmcp::{ErrorData as McpError, ServerHandler};

use super::config::{PrefixMode, CLIENT_NAME_LIMIT};
use super::upstream::{ForwardError, Upstream};
use crate::mcp::{CallOutcome, CallReport};
use crate::Vitals;

/// Where a client-visible name leads.
#[derive(Debug, Clone)]
struct Route {
    upstream: usize,
    name: String,
}

/// The merged lists and the routing table.
#[derive(Default)]
struct Routes {
    tools: Vec<Tool>,
    /// Name → index in `tools` (looked up on every call).
    tool_index: HashMap<String, usize>,
    tool_route: HashMap<String, Route>,
    /// Tools of upstreams that are down, from what they last listed: not listed to clients, but
    /// a call to one is routed (and refused as unavailable) rather than unknown.
    offline_tools: HashMap<String, (Route, Tool)>,
    prompts: Vec<Prompt>,
    prompt_route: HashMap<String, Route>,
    resources: Vec<Resource>,
    resource_route: HashMap<String, usize>,
    templates: Vec<ResourceTemplate>,
    template_route: Vec<(String, usize)>,
    /// URI scheme → the one upstream whose resources use it (None when several do).
    scheme_route: HashMap<String, Option<usize>>,
    conflicts: Vec<String>,
}

/// The scheme of a URI (`demo` in `demo://x`), if it has one.
fn scheme(uri: &str) -> Option<&str> {
    uri.split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
}

/// One client session.
struct Session {
    peer: OnceLock<Peer<RoleServer>>,
    subscriptions: Mutex<HashSet<String>>,
    /// This session's own children of `per_session` upstreams, by upstream index.
    instances: Mutex<HashMap<usize, Arc<Upstream>>>,
    /// Children per upstream across sessions (shared with the gateway), for the cap.
    counts: Option<Arc<[AtomicUsize]>>,
}

impl Session {
    fn new(counts: Arc<[AtomicUsize]>) -> Self {
        Session {
            peer: OnceLock::new(),
            subscriptions: Mutex::new(HashSet::new()),
            instances: Mutex::new(HashMap::new()),
            counts: Some(counts),
        }
    }
}

/// A session that ends takes its own children with it.
impl Drop for Session {
    fn drop(&mut self) {
        let instances: Vec<(usize, Arc<Upstream>)> = self
            .instances
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if instances.is_empty() {
            return;
        }
        let counts = self.counts.clone();
        let stop = async move {
            for (i, u) in instances {
                u.stop().await;
                if let Some(c) = &counts {
                    c[i].fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stop);
        }
    }
}

struct Shared {
    vitals: Vitals,
    upstreams: Vec<Arc<Upstream>>,
    delimiter: String,
    routes: RwLock<Arc<Routes>>,
    sessions: Mutex<Vec<Weak<Session>>>,
    local_has_tool: Box<dyn Fn(&str) -> bool + Send + Sync>,
    warned_long: Mutex<HashSet<String>>,
    /// Children of each `per_session` upstream, across sessions.
    session_counts: Arc<[AtomicUsize]>,
    /// Open `subscriptions/listen` streams of 2026-07-28 clients (told of list changes as
    /// sessions are; each stream's filter is checked by rmcp when sending).
    listeners: Mutex<Vec<(u64, SubscriptionSink)>>,
    /// Key of the next listen stream (JSON-RPC ids of different clients may collide).
    next_listener: std::sync::atomic::AtomicU64,
}

/// The gateway's MCP handler: `local` (the gateway's own tools, e.g. the operator tools) plus
/// every upstream. Wrap it with [`Vitals::instrument`] for limits, breakers and metrics. Each
/// client session needs its own value: [`Gateway::for_session`].
pub struct Gateway<L> {
    shared: Arc<Shared>,
    session: Arc<Session>,
    local: L,
}

impl<L> std::fmt::Debug for Gateway<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl<L: Clone> Clone for Gateway<L> {
    /// A clone shares the session: use [`Gateway::for_session`] for a new client.
    fn clone(&self) -> Self {
        Gateway {
            shared: self.shared.clone(),
            session: self.session.clone(),
            local: self.local.clone(),
        }
    }
}

impl<L: ServerHandler + Clone> Gateway<L> {
    /// A gateway over `upstreams` (already created, started or not) and `local`.
    /// `delimiter` separates an upstream's name from a prefixed tool or prompt name.
    pub fn new(vitals: Vitals, local: L, upstreams: Vec<Arc<Upstream>>, delimiter: &str) -> Self {
        let probe = local.clone();
        let n = upstreams.len();
        let shared = Arc::new(Shared {
            vitals,
            upstreams,
            delimiter: delimiter.to_owned(),
            routes: RwLock::new(Arc::default()),
            sessions: Mutex::new(Vec::new()),
            local_has_tool: Box::new(move |name| probe.get_tool(name).is_some()),
            warned_long: Mutex::new(HashSet::new()),
            session_counts: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            listeners: Mutex::new(Vec::new()),
            next_listener: std::sync::atomic::AtomicU64::new(0),
        });
        for u in &shared.upstreams {
            let weak = Arc::downgrade(&shared);
            u.set_on_change(move || {
                if let Some(s) = weak.upgrade() {
                    s.rebuild();
                }
            });
            let weak = Arc::downgrade(&shared);
            u.set_on_notification(move |name, n| {
                if let Some(s) = weak.upgrade() {
                    s.relay(name, n);
                }
            });
        }
        shared.rebuild();
        let session = Arc::new(Session::new(shared.session_counts.clone()));
        Gateway {
            shared,
            session,
            local,
        }
    }

    /// The handler for a new client session (its own subscriptions, notification channel and,
    /// for `per_session` upstreams, children).
    pub fn for_session(&self, local: L) -> Self {
        Gateway {
            shared: self.shared.clone(),
            session: Arc::new(Session::new(self.shared.session_counts.clone())),
            local,
        }
    }

    /// The upstream instance serving this session at index `i`: the shared one, or for a
    /// `per_session` upstream this session's own child (started on first use, at most
    /// `max_sessions` at once).
    async fn upstream_for(&self, i: usize) -> Result<Arc<Upstream>, ForwardError> {
        let shared = &self.shared.upstreams[i];
        let settings = &shared.config().settings;
        if !settings.per_session {
            return Ok(shared.clone());
        }
        let unavailable = |phase| ForwardError::Unavailable {
            upstream: shared.name().to_owned(),
            phase,
        };
        let u = {
            let mut instances = self
                .session
                .instances
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match instances.get(&i) {
                Some(u) => u.clone(),
                None => {
                    let count = &self.shared.session_counts[i];
                    if count.fetch_add(1, Ordering::SeqCst) >= settings.max_sessions {
                        count.fetch_sub(1, Ordering::SeqCst);
                        return Err(ForwardError::Busy {
                            upstream: shared.name().to_owned(),
                        });
                    }
                    let u = Upstream::for_session(shared.config().clone(), shared.metrics());
                    let session = Arc::downgrade(&self.session);
                    u.set_on_notification(move |name, mut n| {
                        let Some(peer) = session.upgrade().and_then(|s| s.peer.get().cloned())
                        else {
                            return;
                        };
                        if let ServerNotification::LoggingMessageNotification(m) = &mut n {
                            if m.params.logger.is_none() {
                                m.params.logger = Some(name.to_owned());
                            }
                        }
                        tokio::spawn(async move {
                            let _ = peer.send_notification(n).await;
                        });
                    });
                    u.start();
                    instances.insert(i, u.clone());
                    u
                }
            }
        };
        if u.connection().is_none() && !u.wait_ready(settings.init_timeout).await {
            return Err(unavailable(u.phase()));
        }
        Ok(u)
    }

    /// Stops every upstream and every session's own children (closing stdin, then SIGTERM, then
    /// SIGKILL to each process group), in parallel; returns when all are gone.
    pub async fn stop(&self) {
        let sessions: Vec<Arc<Session>> = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut all: Vec<Arc<Upstream>> = self.shared.upstreams.clone();
        for s in sessions.iter().chain(std::iter::once(&self.session)) {
            let mut instances = s.instances.lock().unwrap_or_else(|e| e.into_inner());
            for (i, u) in instances.drain() {
                self.shared.session_counts[i].fetch_sub(1, Ordering::SeqCst);
                all.push(u);
            }
        }
        let stops: Vec<_> = all
            .into_iter()
            .map(|u| tokio::spawn(async move { u.stop().await }))
            .collect();
        for s in stops {
            let _ = s.await;
        }
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.shared.upstreams
    }

    /// Names hidden because an earlier source lists them too.
    pub fn conflicts(&self) -> Vec<String> {
        self.shared.routes().conflicts.clone()
    }

    fn upstream_for_uri(&self, uri: &str) -> Option<usize> {
        let routes = self.shared.routes();
        if let Some(i) = routes.resource_route.get(uri) {
            return Some(*i);
        }
        if let Some((_, i)) = routes
            .template_route
            .iter()
            .find(|(t, _)| template_matches(t, uri))
        {
            return Some(*i);
        }
        // A URI nobody listed (e.g. one the upstream created during the session) goes to the
        // one upstream whose resources share its scheme.
        if let Some(Some(i)) = scheme(uri).and_then(|s| routes.scheme_route.get(s)) {
            return Some(*i);
        }
        // A single upstream serving resources gets every URI nobody else claims.
        let mut serving = self
            .shared
            .upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| {
                u.connection()
                    .is_some_and(|c| c.catalog.capabilities.resources.is_some())
            })
            .map(|(i, _)| i);
        match (serving.next(), serving.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        }
    }

    async fn forward(
        &self,
        upstream: usize,
        request: ClientRequest,
        method: &'static str,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let u = self
            .upstream_for(upstream)
            .await
            .map_err(ForwardError::into_mcp)?;
        u.forward(request, method, context)
            .await
            .map(complete)
            .map_err(ForwardError::into_mcp)
    }
}

/// An upstream's result, marked `resultType: "complete"` when it has no type: a legacy-only
/// upstream sends none, and a 2026-07-28 client requires one (rmcp removes the mark again for
/// clients of older revisions).
fn complete(mut result: ServerResult) -> ServerResult {
    let slot = match &mut result {
        ServerResult::CallToolResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::CompleteResult(r) => &mut r.result_type,
        ServerResult::ListToolsResult(r) => &mut r.result_type,
        ServerResult::ListPromptsResult(r) => &mut r.result_type,
        ServerResult::ListResourcesResult(r) => &mut r.result_type,
        ServerResult::ListResourceTemplatesResult(r) => &mut r.result_type,
        _ => return result,
    };
    slot.get_or_insert(ResultType::COMPLETE);
    result
}

impl Shared {
    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn prefixed(&self, upstream: &Upstream) -> bool {
        match upstream.config().settings.prefix {
            PrefixMode::Always => true,
            PrefixMode::Never => false,
            PrefixMode::Auto => self.upstreams.len() > 1,
        }
    }

    /// Rebuilds the routing table from the upstreams that are up, and tells clients what changed.
    fn rebuild(&self) {
        let mut r = Routes::default();
        let mut seen_tools: HashSet<String> = HashSet::new();
        let mut seen_prompts: HashSet<String> = HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let Some(conn) = u.connection() else {
                let Some(catalog) = u.last_catalog() else {
                    continue;
                };
                let prefix = self
                    .prefixed(u)
                    .then(|| format!("{}{}", u.name(), self.delimiter));
                for t in &catalog.tools {
                    let name = match &prefix {
                        Some(p) => format!("{p}{}", t.name),
                        None => t.name.to_string(),
                    };
                    if !(self.local_has_tool)(&name) {
                        let mut tool = t.clone();
                        tool.name = name.clone().into();
                        let route = Route {
                            upstream: i,
                            name: t.name.to_string(),
                        };
                        r.offline_tools.entry(name).or_insert((route, tool));
                    }
                }
                continue;
            };
            let prefix = self
                .prefixed(u)
                .then(|| format!("{}{}", u.name(), self.delimiter));
            let exposed = |name: &str| match &prefix {
                Some(p) => format!("{p}{name}"),
                None => name.to_owned(),
            };
            for t in &conn.catalog.tools {
                let name = exposed(&t.name);
                if (self.local_has_tool)(&name) || !seen_tools.insert(name.clone()) {
                    tracing::warn!(upstream = u.name(), tool = %name,
                        "tool name listed by an earlier source: hidden");
                    r.conflicts.push(format!("tool {name} ({})", u.name()));
                    continue;
                }
                if name.len() > CLIENT_NAME_LIMIT
                    && self
                        .warned_long
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone())
                {
                    tracing::warn!(upstream = u.name(), tool = %name, len = name.len(),
                        "tool name longer than {CLIENT_NAME_LIMIT} characters: some clients cut or refuse it");
                }
                let mut tool = t.clone();
                tool.name = name.clone().into();
                r.tool_route.insert(
                    name.clone(),
                    Route {
                        upstream: i,
                        name: t.name.to_string(),
                    },
                );
                self.vitals.upstreams().route_tool(&name, u.name());
                r.tool_index.insert(name, r.tools.len());
                r.tools.push(tool);
            }
            for p in &conn.catalog.prompts {
                let name = exposed(&p.name);
                if !seen_prompts.insert(name.clone()) {
                    tracing::warn!(upstream = u.name(), prompt = %name,
                        "prompt name listed by an earlier source: hidden");
                    r.conflicts.push(format!("prompt {name} ({})", u.name()));
                    continue;
                }
                let mut prompt = p.clone();
                prompt.name = name.clone();
                r.prompt_route.insert(
                    name,
                    Route {
                        upstream: i,
                        name: p.name.clone(),
                    },
                );
                r.prompts.push(prompt);
            }
            for res in &conn.catalog.resources {
                if r.resource_route.contains_key(&res.uri) {
                    r.conflicts
                        .push(format!("resource {} ({})", res.uri, u.name()));
                    continue;
                }
                r.resource_route.insert(res.uri.clone(), i);
                r.resources.push(res.clone());
                claim_scheme(&mut r.scheme_route, &res.uri, i);
            }
            for t in &conn.catalog.templates {
                r.template_route.push((t.uri_template.clone(), i));
                r.templates.push(t.clone());
                claim_scheme(&mut r.scheme_route, &t.uri_template, i);
            }
        }
        // A name served by an upstream that is up wins over one that is down.
        r.offline_tools
            .retain(|name, _| !r.tool_route.contains_key(name));
        if let Some(m) = self.vitals.gateway_metrics() {
            m.conflicts.set(r.conflicts.len() as i64);
        }
        let new = Arc::new(r);
        let old = std::mem::replace(
            &mut *self.routes.write().unwrap_or_else(|e| e.into_inner()),
            new.clone(),
        );
        let names = |t: &[Tool]| t.iter().map(|t| t.name.to_string()).collect::<Vec<_>>();
        let tools_changed =
            names(&old.tools) != names(&new.tools)
                || old.tools.iter().zip(&new.tools).any(|(a, b)| {
                    a.description != b.description || a.input_schema != b.input_schema
                });
        let prompts_changed = old
            .prompts
            .iter()
            .map(|p| (&p.name, &p.description))
            .ne(new.prompts.iter().map(|p| (&p.name, &p.description)));
        let resources_changed = old
            .resources
            .iter()
            .map(|p| &p.uri)
            .ne(new.resources.iter().map(|p| &p.uri))
            || old.templates.len() != new.templates.len();
        if tools_changed || prompts_changed || resources_changed {
            for peer in self.peers() {
                tokio::spawn(async move {
                    if tools_changed {
                        let _ = peer.notify_tool_list_changed().await;
                    }
                    if prompts_changed {
                        let _ = peer.notify_prompt_list_changed().await;
                    }
                    if resources_changed {
                        let _ = peer.notify_resource_list_changed().await;
                    }
                });
            }
            let listeners: Vec<SubscriptionSink> = self
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(_, s)| s.clone())
                .collect();
            for sink in listeners {
                tokio::spawn(async move {
                    // A category the stream did not ask for is refused by the sink: ignored.
                    if tools_changed {
                        let _ = sink.notify_tool_list_changed().await;
                    }
                    if prompts_changed {
                        let _ = sink.notify_prompt_list_changed().await;
                    }
                    if resources_changed {
                        let _ = sink.notify_resource_list_changed().await;
                    }
                });
            }
        }
    }

    /// Live client sessions (closed ones are dropped from the list).
    fn peers(&self) -> Vec<Peer<RoleServer>> {
        self.sessions_where(|_| true)
    }

    fn sessions_where(&self, keep: impl Fn(&Session) -> bool) -> Vec<Peer<RoleServer>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|w| {
            w.upgrade()
                .is_some_and(|s| s.peer.get().is_none_or(|p| !p.is_transport_closed()))
        });
        sessions
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| keep(s))
            .filter_map(|s| s.peer.get().cloned())
            .collect()
    }

    /// Relays a notification from an upstream that belongs to no request: log messages to every
    /// client, resource updates to the clients subscribed to that resource.
    fn relay(&self, upstream: &str, notification: ServerNotification) {
        let peers = match &notification {
            ServerNotification::ResourceUpdatedNotification(n) => {
                let uri = n.params.uri.clone();
                self.sessions_where(move |s| {
                    s.subscriptions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&uri)
                })
            }
            _ => self.peers(),
        };
        let mut notification = notification;
        if let ServerNotification::LoggingMessageNotification(n) = &mut notification {
            if n.params.logger.is_none() {
                n.params.logger = Some(upstream.to_owned());
            }
        }
        for peer in peers {
            let n = notification.clone();
            tokio::spawn(async move {
                let _ = peer.send_notification(n).await;
            });
        }
    }
}

fn claim_scheme(routes: &mut HashMap<String, Option<usize>>, uri: &str, upstream: usize) {
    if let Some(s) = scheme(uri) {
        let e = routes.entry(s.to_owned()).or_insert(Some(upstream));
        if *e != Some(upstream) {
            *e = None;
        }
    }
}

/// Whether `uri` fits an RFC 6570 level-1 template: `{name}` matches one or more characters
/// other than `/`, `{+name}` and `{/name}`-style expansions match anything.
fn template_matches(template: &str, uri: &str) -> bool {
    fn go(t: &[u8], u: &[u8]) -> bool {
        match t.iter().position(|&b| b == b'{') {
            None => t == u,
            Some(open) => {
                if u.len() < open || t[..open] != u[..open] {
                    return false;
                }
                let Some(close) = t[open..].iter().position(|&b| b == b'}') else {
                    return t == u;
                };
                let expr = &t[open + 1..open + close];
                let rest_t = &t[open + close + 1..];
                let rest_u = &u[open..];
                let any = matches!(
                    expr.first(),
                    Some(b'+' | b'#' | b'/' | b'?' | b'&' | b'.' | b';')
                );
                (1..=rest_u.len()).any(|n| {
                    let (var, tail) = rest_u.split_at(n);
                    (any || !var.contains(&b'/')) && go(rest_t, tail)
                }) || (any && go(rest_t, rest_u))
            }
        }
    }
    go(template.as_bytes(), uri.as_bytes())
}

fn report(context: &RequestContext<RoleServer>, outcome: CallOutcome, failure: bool) {
    if let Some(r) = CallReport::of(context) {
        r.set(outcome, failure);
    }
}

/// Rounds of questions the gateway asks a legacy client on behalf of one upstream call (as
/// rmcp's own client does, `DEFAULT_MRTR_MAX_ROUNDS`).
const MAX_INPUT_ROUNDS: usize = DEFAULT_MRTR_MAX_ROUNDS;

/// True when the client speaks a revision before 2026-07-28, which has no input-required
/// results (it is asked through server-to-client requests instead).
fn legacy_client(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_none_or(|v| v.as_str() < ProtocolVersion::V_2026_07_28.as_str())
}

/// Asks a legacy client an upstream's input requests, one server-to-client request each (its
/// elicitation, sampling or roots handler answers); the answers keyed as the questions were.
async fn ask_client(
    context: &RequestContext<RoleServer>,
    questions: Option<InputRequests>,
) -> Result<InputResponses, McpError> {
    let mut answers = InputResponses::new();
    for (key, question) in questions.unwrap_or_default() {
        let request = match question {
            InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
            InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
            InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
            _ => {
                return Err(McpError::internal_error(
                    format!("the upstream asked `{key}` of a kind the gateway cannot relay"),
                    None,
                ))
            }
        };
        let answer = context.peer.send_request(request).await.map_err(|e| {
            McpError::internal_error(format!("asking the client for `{key}` failed: {e}"), None)
        })?;
        let answer = serde_json::to_value(answer)
            .map_err(|e| McpError::internal_error(format!("client answer `{key}`: {e}"), None))?;
        answers.insert(key, answer);
    }
    Ok(answers)
}

fn unexpected(method: &str) -> McpError {
    McpError::internal_error(
        format!("the upstream answered `{method}` with a result of the wrong kind"),
        None,
    )
}

impl<L: ServerHandler + Clone> ServerHandler for Gateway<L> {
    fn get_info(&self) -> ServerConfig {
        let mut info = self.local.get_info();
        let caps = &mut info.capabilities;
        let mut tools = caps.tools.take().unwrap_or_default();
        tools.list_changed = Some(true);
        caps.tools = Some(tools);
        let mut prompts = caps.prompts.take().unwrap_or_default();
        prompts.list_changed = Some(true);
        caps.prompts = Some(prompts);
        let mut resources = caps.resources.take().unwrap_or_default();
        resources.subscribe = Some(true);
        resources.list_changed = Some(true);
        caps.resources = Some(resources);
        if caps.completions.is_none() {
            caps.completions = Some(Default::default());
        }
        if caps.logging.is_none() {
            caps.logging = Some(Default::default());
        }
        let extra: Vec<String> = self
            .shared
            .upstreams
            .iter()
            .filter_map(|u| {
                let c = u.connection()?;
                let text = c.catalog.instructions.clone()?;
                Some(format!("[{}] {text}", u.name()))
            })
            .collect();
        if !extra.is_empty() {
            let mut text = info.instructions.take().unwrap_or_default();
            for e in extra {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&e);
            }
            info.instructions = Some(text);
        }
        info
    }

    /// `subscriptions/listen` (2026-07-28): list changes of the merged view, in every category
    /// the client asks for (rmcp keeps only those [`get_info`](Self::get_info) advertises).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        // Per-resource updates are relayed to legacy subscribers only.
        accepted.resource_subscriptions = None;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let key = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, context.sink().clone()));
        context.cancelled().await;
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(k, _)| *k != key);
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if let Some(t) = self.local.get_tool(name) {
            return Some(t);
        }
        let routes = self.shared.routes();
        routes
            .tool_index
            .get(name)
            .map(|&i| &routes.tools[i])
            .or_else(|| routes.offline_tools.get(name).map(|(_, t)| t))
            .cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let route = {
            let routes = self.shared.routes();
            let name = request.name.as_ref();
            routes
                .tool_route
                .get(name)
                .or_else(|| routes.offline_tools.get(name).map(|(r, _)| r))
                .cloned()
        };
        let Some(route) = route else {
            return self.local.call_tool(request, context).await;
        };
        let upstream = match self.upstream_for(route.upstream).await {
            Ok(u) => u,
            Err(e) => {
                report(&context, e.outcome(), e.is_upstream_failure());
                return Err(e.into_mcp());
            }
        };
        let mut params = request;
        params.name = route.name.into();
        params.meta = None;
        let mut rounds = 0;
        let result = loop {
            let result = upstream
                .forward(
                    ClientRequest::CallToolRequest(CallToolRequest::new(params.clone())),
                    "tools/call",
                    &context,
                )
                .await
                .map(complete);
            match result {
                // A legacy client cannot read an input-required result: the gateway asks it
                // the upstream's questions itself and calls the upstream again with the answers.
                Ok(ServerResult::InputRequiredResult(ask))
                    if legacy_client(&context) && rounds < MAX_INPUT_ROUNDS =>
                {
                    rounds += 1;
                    self.shared
                        .vitals
                        .mcp_metrics()
                        .tool_input_rounds
                        .exact_labels([upstream.name(), params.name.as_ref()])
                        .inc();
                    match ask_client(&context, ask.input_requests).await {
                        Ok(answers) => {
                            params.input_responses = Some(answers);
                            params.request_state = ask.request_state;
                        }
                        Err(e) => {
                            report(&context, CallOutcome::JsonRpcError, false);
                            return Err(e);
                        }
                    }
                }
                other => break other,
            }
        };
        match result {
            Ok(ServerResult::CallToolResult(r)) => {
                let failed = r.is_error == Some(true);
                let trips = failed && upstream.config().settings.tool_errors_trip_breaker;
                report(
                    &context,
                    if failed {
                        CallOutcome::ToolError
                    } else {
                        CallOutcome::Ok
                    },
                    trips,
                );
                Ok(CallToolResponse::Complete(r))
            }
            Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
            Ok(ServerResult::CreateTaskResult(r)) => Ok(CallToolResponse::Task(r)),
            Ok(_) => {
                report(&context, CallOutcome::JsonRpcError, true);
                Err(unexpected("tools/call"))
            }
            Err(e) => {
                report(&context, e.outcome(), e.is_upstream_failure());
                Err(e.into_mcp())
            }
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut r = self.local.list_tools(request, context).await?;
        r.tools.extend(self.shared.routes().tools.iter().cloned());
        r.next_cursor = None;
        Ok(r)
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut r = self.local.list_prompts(request, context).await?;
        r.prompts
            .extend(self.shared.routes().prompts.iter().cloned());
        r.next_cursor = None;
        Ok(r)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let route = self
            .shared
            .routes()
            .prompt_route
            .get(&request.name)
            .cloned();
        let Some(route) = route else {
            return self.local.get_prompt(request, context).await;
        };
        let mut params = request;
        params.name = route.name;
        params.meta = None;
        for _ in 0..=MAX_INPUT_ROUNDS {
            match self
                .forward(
                    route.upstream,
                    ClientRequest::GetPromptRequest(GetPromptRequest::new(params.clone())),
                    "prompts/get",
                    &context,
                )
                .await?
            {
                ServerResult::GetPromptResult(r) => return Ok(r.into()),
                // A legacy client is asked the upstream's questions by the gateway.
                ServerResult::InputRequiredResult(ask) if legacy_client(&context) => {
                    params.input_responses = Some(ask_client(&context, ask.input_requests).await?);
                    params.request_state = ask.request_state;
                }
                ServerResult::InputRequiredResult(r) => {
                    return Ok(GetPromptResponse::InputRequired(r))
                }
                _ => return Err(unexpected("prompts/get")),
            }
        }
        Err(McpError::internal_error(
            format!("the upstream asked for input more than {MAX_INPUT_ROUNDS} times"),
            None,
        ))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut r = self.local.list_resources(request, context).await?;
        r.resources
            .extend(self.shared.routes().resources.iter().cloned());
        r.next_cursor = None;
        Ok(r)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut r = self.local.list_resource_templates(request, context).await?;
        r.resource_templates
            .extend(self.shared.routes().templates.iter().cloned());
        r.next_cursor = None;
        Ok(r)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let Some(i) = self.upstream_for_uri(&request.uri) else {
            return self.local.read_resource(request, context).await;
        };
        let mut params = request;
        params.meta = None;
        match self
            .forward(
                i,
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params)),
                "resources/read",
                &context,
            )
            .await?
        {
            ServerResult::ReadResourceResult(r) => Ok(r.into()),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(unexpected("resources/read")),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let Some(i) = self.upstream_for_uri(&request.uri) else {
            return self.local.subscribe(request, context).await;
        };
        let uri = request.uri.clone();
        let mut params = request;
        params.meta = None;
        self.forward(
            i,
            ClientRequest::SubscribeRequest(SubscribeRequest::new(params)),
            "resources/subscribe",
            &context,
        )
        .await?;
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let Some(i) = self.upstream_for_uri(&request.uri) else {
            return self.local.unsubscribe(request, context).await;
        };
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request.uri);
        let mut params = request;
        params.meta = None;
        self.forward(
            i,
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params)),
            "resources/unsubscribe",
            &context,
        )
        .await?;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let (upstream, reference) = match &request.r#ref {
            Reference::Prompt(p) => {
                let route = self.shared.routes().prompt_route.get(&p.name).cloned();
                match route {
                    Some(r) => {
                        let mut p = p.clone();
                        p.name = r.name;
                        (Some(r.upstream), Reference::Prompt(p))
                    }
                    None => (None, request.r#ref.clone()),
                }
            }
            Reference::Resource(t) => (self.upstream_for_uri(&t.uri), request.r#ref.clone()),
            _ => (None, request.r#ref.clone()),
        };
        let Some(i) = upstream else {
            return self.local.complete(request, context).await;
        };
        let mut params = request;
        params.r#ref = reference;
        params.meta = None;
        match self
            .forward(
                i,
                ClientRequest::CompleteRequest(CompleteRequest::new(params)),
                "completion/complete",
                &context,
            )
            .await?
        {
            ServerResult::CompleteResult(r) => Ok(r),
            _ => Err(unexpected("completion/complete")),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        for (i, u) in self.shared.upstreams.iter().enumerate() {
            if u.connection()
                .is_some_and(|c| c.catalog.capabilities.logging.is_some())
            {
                let mut params = request.clone();
                params.meta = None;
                if let Err(e) = self
                    .forward(
                        i,
                        ClientRequest::SetLevelRequest(SetLevelRequest::new(params)),
                        "logging/setLevel",
                        &context,
                    )
                    .await
                {
                    tracing::warn!(upstream = u.name(), error = %e.message, "logging/setLevel failed upstream");
                }
            }
        }
        self.local.set_level(request, context).await
    }

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.local.ping(context)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if self.session.peer.set(context.peer.clone()).is_ok() {
            self.shared
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::downgrade(&self.session));
        }
        self.local.on_initialized(context).await;
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        for u in &self.shared.upstreams {
            u.notify(ClientNotification::RootsListChangedNotification(
                RootsListChangedNotification::default(),
            ))
            .await;
        }
        self.local.on_roots_list_changed(context).await;
    }
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn templates_match_uris() {
        assert!(template_matches(
            "demo://resource/dynamic/text/{resourceId}",
            "demo://resource/dynamic/text/7"
        ));
        assert!(!template_matches(
            "demo://resource/dynamic/text/{resourceId}",
            "demo://resource/dynamic/text/"
        ));
        assert!(!template_matches(
            "demo://resource/dynamic/text/{id}",
            "demo://resource/dynamic/text/a/b"
        ));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/42/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/42/other"
        ));
        assert!(template_matches("plain://x", "plain://x"));
        assert!(!template_matches("plain://x", "plain://y"));
    }
}
