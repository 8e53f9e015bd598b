//! Built without the `conformance-fixtures` feature: no fixture tools, resources or prompts, and
//! `--conformance-fixtures` is refused at start. Same functions as `fixtures.rs`, answering as
//! the server does when the fixtures are off.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::*;
use rmcp::ErrorData as McpError;
use serde_json::json;

use crate::tools::VitalsServer;

impl VitalsServer {
    /// No fixture tools.
    pub(crate) fn fixture_router() -> ToolRouter<Self> {
        ToolRouter::new()
    }
}

/// No completions.
pub(crate) fn complete(_request: &CompleteRequestParams) -> CompleteResult {
    CompleteResult::default()
}

/// No resources.
pub(crate) fn resources() -> ListResourcesResult {
    ListResourcesResult::default()
}

/// No resource templates.
pub(crate) fn resource_templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::default()
}

/// The error for an unknown resource.
pub(crate) fn resource_not_found(uri: &str) -> McpError {
    McpError::resource_not_found(
        format!("unknown resource `{uri}`"),
        Some(json!({"uri": uri})),
    )
}

/// Every resource is unknown.
pub(crate) fn read_resource(uri: &str) -> Result<ReadResourceResult, McpError> {
    Err(resource_not_found(uri))
}

/// No prompts.
pub(crate) fn prompts() -> ListPromptsResult {
    ListPromptsResult::default()
}

/// Every prompt is unknown.
pub(crate) async fn get_prompt(
    request: &GetPromptRequestParams,
    _ctx: &rmcp::service::RequestContext<rmcp::RoleServer>,
) -> Result<GetPromptResponse, McpError> {
    Err(McpError::invalid_params(
        format!("unknown prompt `{}`", request.name),
        None,
    ))
}

/// No listen streams to wait for.
pub(crate) fn listen_accepted() {}

/// No listen streams (the default server advertises nothing that changes).
pub(crate) async fn listen(context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
    context.cancelled().await;
    Ok(())
}

/// No fixture tools to mark.
pub(crate) fn mark_tools(_tools: &mut [Tool]) {}
