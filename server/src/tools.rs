//! The MCP handler: operator tools (always) and the conformance fixtures (behind a flag).

#![allow(deprecated)] // logging, sampling and subscriptions are deprecated by 2026-07-28; served for 2025-11-25.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{
    tool, tool_handler, tool_router, ErrorData as McpError, Json, RoleServer, ServerHandler,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vitals_std::{BreakerStatus, Format, HealthSnapshot, RateLimitStatus, Vitals};

use crate::fixtures;

/// The server's MCP handler. One per session (cheap: shares the [`Vitals`]).
#[derive(Clone)]
pub struct VitalsServer {
    pub(crate) vitals: Vitals,
    /// Built once per server and shared by the sessions' handlers.
    tool_router: Arc<ToolRouter<Self>>,
    pub(crate) fixtures: bool,
    /// The session's `logging/setLevel` level, as its rank (`LoggingLevel as u8`): the fixtures
    /// send no log notification below it.
    log_level: Arc<AtomicU8>,
}

impl std::fmt::Debug for VitalsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VitalsServer")
            .field("fixtures", &self.fixtures)
            .finish_non_exhaustive()
    }
}

/// Arguments of `server_metrics`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct MetricsArgs {
    /// `prometheus` (text 0.0.4, default) or `openmetrics`.
    #[serde(default)]
    pub format: Option<String>,
}

/// Result of `server_metrics`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricsOutput {
    /// The format rendered: `prometheus` or `openmetrics`.
    pub format: String,
    /// The HTTP Content-Type of that format.
    pub content_type: String,
    /// Number of series in the exposition.
    pub series_count: u64,
    /// The exposition text.
    pub text: String,
}

/// Result of `circuit_breaker_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BreakersOutput {
    /// Every circuit breaker, by upstream name.
    pub breakers: Vec<BreakerStatus>,
}

#[tool_router(router = operator_router)]
impl VitalsServer {
    /// A handler over `vitals`, with the conformance fixtures when `fixtures` is set.
    pub fn new(vitals: Vitals, fixtures: bool) -> Self {
        let mut tool_router = Self::operator_router();
        if fixtures {
            tool_router += Self::fixture_router();
        }
        VitalsServer {
            vitals,
            tool_router: Arc::new(tool_router),
            fixtures,
            log_level: Arc::new(AtomicU8::new(LoggingLevel::Info as u8)),
        }
    }

    /// Whether a log notification at `level` passes the session's `logging/setLevel` threshold.
    #[cfg(feature = "conformance-fixtures")]
    pub(crate) fn logs_at(&self, level: LoggingLevel) -> bool {
        level as u8 >= self.log_level.load(Ordering::Relaxed)
    }

    /// A handler for a new session: the same tools (their router and schemas built once, by
    /// [`VitalsServer::new`], and shared), its own log level.
    pub fn for_session(&self) -> Self {
        VitalsServer {
            vitals: self.vitals.clone(),
            tool_router: self.tool_router.clone(),
            fixtures: self.fixtures,
            log_level: Arc::new(AtomicU8::new(LoggingLevel::Info as u8)),
        }
    }

    #[tool(
        description = "Health report of the server: overall status and each component (the daily tool-call quota and circuit breakers included)."
    )]
    async fn server_health(&self) -> Json<HealthSnapshot> {
        Json(self.vitals.health())
    }

    #[tool(
        description = "The server's Prometheus exposition (text 0.0.4 or OpenMetrics) and its series count. When the server protects /metrics with a bearer token, the /mcp request must carry the same `Authorization: Bearer` header."
    )]
    async fn server_metrics(
        &self,
        Parameters(args): Parameters<MetricsArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<MetricsOutput>, McpError> {
        // The tool must not hand out what /metrics guards: over HTTP it asks for the same token.
        // Over stdio there are no HTTP parts; the client is the process that started the server.
        let exposition = self.vitals.exposition();
        if let Some(parts) = context.extensions.get::<http::request::Parts>() {
            if !exposition.authorized(&parts.headers) {
                return Err(McpError::invalid_request(
                    "unauthorized: server_metrics needs the metrics bearer token \
                     (Authorization: Bearer TOKEN) on this /mcp request",
                    None,
                ));
            }
        }
        let format = match args.format.as_deref().unwrap_or("prometheus") {
            "prometheus" | "text" => Format::Prometheus,
            "openmetrics" => Format::OpenMetrics,
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown format `{other}`: expected prometheus or openmetrics"),
                    None,
                ))
            }
        };
        let text = self.vitals.render(format);
        Ok(Json(MetricsOutput {
            format: match format {
                Format::Prometheus => "prometheus".into(),
                Format::OpenMetrics => "openmetrics".into(),
            },
            content_type: format.content_type().into(),
            series_count: self.vitals.series_count() as u64,
            text,
        }))
    }

    #[tool(
        description = "Rate limiters: budgets, clients tracked and requests refused (HTTP per client, tools per client and per tool) and the daily tool-call quota (used, remaining, reset time)."
    )]
    async fn rate_limit_status(&self) -> Json<RateLimitStatus> {
        Json(self.vitals.rate_limit_status())
    }

    #[tool(
        description = "Circuit breakers per upstream: state, current window, rejections and transitions."
    )]
    async fn circuit_breaker_status(&self) -> Json<BreakersOutput> {
        Json(BreakersOutput {
            breakers: self.vitals.breaker_status(),
        })
    }
}

/// The prefix rmcp gives argument-deserialisation failures (which it turns into tool errors).
const BAD_ARGUMENTS: &str = "failed to deserialize parameters:";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for VitalsServer {
    /// Dispatches to the tool router; arguments that do not fit the tool's input schema are a
    /// JSON-RPC invalid-params error (-32602), as for an unknown tool.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        match self.tool_router.call(tcc).await? {
            CallToolResponse::Complete(r) if r.is_error == Some(true) => {
                let bad_args = r
                    .content
                    .first()
                    .and_then(|c| c.as_text())
                    .filter(|t| t.text.starts_with(BAD_ARGUMENTS))
                    .map(|t| t.text.clone());
                match bad_args {
                    Some(message) => Err(McpError::invalid_params(message, None)),
                    None => Ok(CallToolResponse::Complete(r)),
                }
            }
            other => Ok(other),
        }
    }

    /// The routed tools (the macro's list, with the fixtures' changing description marked).
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self.tool_router.list_all();
        if self.fixtures {
            fixtures::mark_tools(&mut tools);
        }
        let mut r = ListToolsResult::with_all_items(tools);
        if context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
        {
            r = r.with_ttl_ms(0).with_cache_scope(CacheScope::Public);
        }
        Ok(r)
    }

    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .enable_completions();
        let caps = if self.fixtures {
            caps.enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .build()
        } else {
            // prompts/list answers (an empty list), so the capability is declared: 2026-07-28
            // requires the discovered capabilities to match the handlers (SEP-2575).
            caps.enable_prompts().build()
        };
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("vitals-server", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Operator tools: server_health, server_metrics, rate_limit_status, circuit_breaker_status.",
            )
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log_level.store(request.level as u8, Ordering::Relaxed);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(fixtures::complete(&request))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(if self.fixtures {
            fixtures::resources()
        } else {
            ListResourcesResult::default()
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(if self.fixtures {
            fixtures::resource_templates()
        } else {
            ListResourceTemplatesResult::default()
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if !self.fixtures {
            return Err(fixtures::resource_not_found(&request.uri));
        }
        fixtures::read_resource(&request.uri).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !self.fixtures {
            return Err(McpError::method_not_found::<SubscribeRequestMethod>());
        }
        // Nothing the fixtures serve ever changes, so no `resources/updated` can follow: the
        // subscription is acknowledged and kept nowhere (nothing would ever read it).
        let _ = request;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !self.fixtures {
            return Err(McpError::method_not_found::<UnsubscribeRequestMethod>());
        }
        let _ = request;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(if self.fixtures {
            fixtures::prompts()
        } else {
            ListPromptsResult::default()
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if !self.fixtures {
            return Err(McpError::invalid_params(
                format!("unknown prompt `{}`", request.name),
                None,
            ));
        }
        fixtures::get_prompt(&request, &context).await
    }

    /// `subscriptions/listen` (2026-07-28): the fixtures accept every requested category the
    /// server advertises; the default server has nothing that changes, so no stream.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let accepted = self.fixtures.then(|| requested.clone());
        if accepted.is_some() {
            fixtures::listen_accepted();
        }
        accepted
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
        fixtures::listen(context).await
    }
}
