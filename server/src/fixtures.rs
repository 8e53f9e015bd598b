//! The MCP conformance suite's fixtures (tools, resources, prompts with fixed names), exposed only
//! with `--conformance-fixtures`. Payloads follow the suite's scenario descriptions.

#![allow(deprecated)] // sampling, elicitation and logging are deprecated by 2026-07-28; 2025-11-25 uses them.

use std::time::Duration;

use base64::Engine;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, ErrorData as McpError, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::tools::VitalsServer;

mod revision_2026;
pub(crate) use revision_2026::{listen, listen_accepted, mark_tools};

/// A 1×1 red PNG.
pub(crate) const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A tiny mono 8 kHz 16-bit WAV (8 silent samples).
pub(crate) fn wav_base64() -> String {
    let samples = 8u32;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.resize(44 + data_len as usize, 0);
    base64::engine::general_purpose::STANDARD.encode(w)
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| McpError::internal_error(format!("fixture: {e}"), None))
}

/// A result built from JSON, with `resultType: "complete"` (required by 2026-07-28; rmcp strips
/// it for peers of older revisions).
fn complete_from_json<T: serde::de::DeserializeOwned>(mut v: Value) -> Result<T, McpError> {
    v["resultType"] = json!("complete");
    from_json(v)
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PromptArg {
    /// The prompt to send to the LLM.
    pub prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct MessageArg {
    /// The message to show the user.
    pub message: String,
}

impl VitalsServer {
    /// Every fixture tool: the 2025-11-25 suite's and the 2026-07-28 suite's.
    pub(crate) fn fixture_router() -> rmcp::handler::server::router::tool::ToolRouter<Self> {
        let mut router = Self::fixture_router_2025();
        router += Self::revision_2026_router();
        router
    }
}

#[tool_router(router = fixture_router_2025)]
impl VitalsServer {
    #[tool(description = "Returns simple text content")]
    async fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    #[tool(description = "Returns image content")]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(PNG_BASE64, "image/png")])
    }

    #[tool(description = "Returns audio content")]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(wav_base64(), "audio/wav")])
    }

    #[tool(description = "Returns an embedded resource")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![from_json(json!({
            "type": "resource",
            "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain",
                         "text": "This is an embedded resource content."}
        }))?]))
    }

    #[tool(description = "Returns text, image and resource content")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_BASE64, "image/png"),
            from_json(json!({
                "type": "resource",
                "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                             "text": "{\"test\":\"data\",\"value\":123}"}
            }))?,
        ]))
    }

    #[tool(description = "Sends three log notifications while running")]
    async fn test_tool_with_logging(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        for (i, msg) in [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !self.logs_at(LoggingLevel::Info) {
                continue;
            }
            let p: LoggingMessageNotificationParam = from_json(
                json!({"level": "info", "logger": "test_tool_with_logging", "data": msg}),
            )?;
            let _ = ctx.peer.notify_logging_message(p).await;
        }
        Ok(text("Tool with logging completed"))
    }

    #[tool(description = "Reports progress 0, 50, 100 of 100")]
    async fn test_tool_with_progress(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let token = serde_json::to_value(&ctx.meta)
            .ok()
            .and_then(|m| m.get("progressToken").cloned());
        for (i, progress) in [0, 50, 100].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let p: ProgressNotificationParam =
                    from_json(json!({"progressToken": token, "progress": progress, "total": 100}))?;
                let _ = ctx.peer.notify_progress(p).await;
            }
        }
        Ok(text("Tool with progress completed"))
    }

    #[tool(description = "Always fails")]
    async fn test_error_handling(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])
    }

    #[tool(description = "Asks the client's LLM through sampling/createMessage")]
    async fn test_sampling(
        &self,
        Parameters(arg): Parameters<PromptArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let params: CreateMessageRequestParams = from_json(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": arg.prompt}}],
            "maxTokens": 100
        }))?;
        match ctx.peer.create_message(params).await {
            Ok(r) => {
                let v = serde_json::to_value(&r).unwrap_or_default();
                let answer = v
                    .pointer("/content/text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| v["content"].to_string());
                Ok(text(format!("LLM response: {answer}")))
            }
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "sampling failed: {e}"
            ))])),
        }
    }

    #[tool(description = "Asks the user through elicitation/create")]
    async fn test_elicitation(
        &self,
        Parameters(arg): Parameters<MessageArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(
            &ctx,
            json!({
                "mode": "form",
                "message": arg.message,
                "requestedSchema": {"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}
                }, "required": ["username", "email"]}
            }),
            "User response: ",
        )
        .await
    }

    #[tool(description = "Elicitation with default values for every primitive type (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(&ctx, json!({
            "mode": "form",
            "message": "Please review and update the form fields with defaults",
            "requestedSchema": {"type": "object", "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {"type": "string", "description": "User status",
                           "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "description": "Verification status", "default": true}
            }}
        }), "Elicitation completed: ").await
    }

    #[tool(description = "Elicitation with the five enum schema variants (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(&ctx, json!({
            "mode": "form",
            "message": "Please select options from the enum fields",
            "requestedSchema": {"type": "object", "properties": {
                "untitledSingle": {"type": "string", "description": "Select one option",
                                   "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "description": "Select one titled option", "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"}]},
                "legacyEnum": {"type": "string", "description": "Select one (legacy)",
                               "enum": ["opt1", "opt2", "opt3"],
                               "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "description": "Select several",
                                  "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array", "description": "Select several titled", "items": {"anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"}]}}
            }}
        }), "Elicitation completed: ").await
    }
}

async fn elicit(
    ctx: &RequestContext<RoleServer>,
    params: Value,
    prefix: &str,
) -> Result<CallToolResult, McpError> {
    let params: ElicitRequestParams = from_json(params)?;
    match ctx.peer.create_elicitation(params).await {
        Ok(r) => {
            let v = serde_json::to_value(&r).unwrap_or_default();
            Ok(text(format!(
                "{prefix}action={}, content={}",
                v["action"].as_str().unwrap_or("unknown"),
                v.get("content").cloned().unwrap_or(Value::Null)
            )))
        }
        Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "elicitation failed: {e}"
        ))])),
    }
}

/// `completion/complete`: a few fixed suggestions filtered by prefix.
pub(crate) fn complete(request: &CompleteRequestParams) -> CompleteResult {
    let v = serde_json::to_value(request).unwrap_or_default();
    let prefix = v
        .pointer("/argument/value")
        .and_then(Value::as_str)
        .unwrap_or("");
    let values: Vec<&str> = ["paris", "park", "party"]
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    complete_from_json(
        json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}),
    )
    .unwrap_or_default()
}

/// The fixture resources.
pub(crate) fn resources() -> ListResourcesResult {
    complete_from_json(json!({"resources": [
        {"uri": "test://static-text", "name": "static-text", "description": "A static text resource", "mimeType": "text/plain"},
        {"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource (PNG)", "mimeType": "image/png"},
        {"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource to subscribe to", "mimeType": "text/plain"}
    ]})).unwrap_or_default()
}

/// The fixture resource templates.
pub(crate) fn resource_templates() -> ListResourceTemplatesResult {
    complete_from_json(json!({"resourceTemplates": [
        {"uriTemplate": "test://template/{id}/data", "name": "template-data",
         "description": "Data for an id", "mimeType": "application/json"}
    ]}))
    .unwrap_or_default()
}

/// The error for an unknown resource.
pub(crate) fn resource_not_found(uri: &str) -> McpError {
    McpError::resource_not_found(
        format!("unknown resource `{uri}`"),
        Some(json!({"uri": uri})),
    )
}

/// Reads a fixture resource.
pub(crate) fn read_resource(uri: &str) -> Result<ReadResourceResult, McpError> {
    let contents = match uri {
        "test://static-text" => json!({"uri": uri, "mimeType": "text/plain",
            "text": "This is the content of the static text resource."}),
        "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG_BASE64}),
        "test://watched-resource" => {
            json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."})
        }
        _ => match uri
            .strip_prefix("test://template/")
            .and_then(|r| r.strip_suffix("/data"))
        {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                json!({"uri": uri, "mimeType": "application/json",
                "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()})
            }
            _ => return Err(resource_not_found(uri)),
        },
    };
    complete_from_json(json!({"contents": [contents]}))
}

/// The fixture prompts.
pub(crate) fn prompts() -> ListPromptsResult {
    complete_from_json(json!({"prompts": [
        {"name": "test_simple_prompt", "description": revision_2026::simple_prompt_description()},
        {"name": "test_prompt_with_arguments", "description": "A prompt with arguments", "arguments": [
            {"name": "arg1", "description": "First test argument", "required": true},
            {"name": "arg2", "description": "Second test argument", "required": true}]},
        {"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource", "arguments": [
            {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
        {"name": "test_prompt_with_image", "description": "A prompt with an image"},
        {"name": "test_input_required_result_prompt", "description": "Asks the user for context (input required) before answering"}
    ]})).unwrap_or_default()
}

/// Gets a fixture prompt (the input-required one asks the client first).
pub(crate) async fn get_prompt(
    request: &GetPromptRequestParams,
    ctx: &RequestContext<RoleServer>,
) -> Result<GetPromptResponse, McpError> {
    if request.name == "test_input_required_result_prompt" {
        return revision_2026::input_required_prompt(request, ctx).await;
    }
    fixed_prompt(request).map(Into::into)
}

/// The prompts with fixed text.
fn fixed_prompt(request: &GetPromptRequestParams) -> Result<GetPromptResult, McpError> {
    let arg = |name: &str| -> Result<String, McpError> {
        request
            .arguments
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| McpError::invalid_params(format!("missing argument `{name}`"), None))
    };
    let messages = match request.name.as_str() {
        "test_simple_prompt" => {
            json!([{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}])
        }
        "test_prompt_with_arguments" => {
            let (a1, a2) = (arg("arg1")?, arg("arg2")?);
            json!([{"role": "user", "content": {"type": "text", "text": format!("Prompt with arguments: arg1='{a1}', arg2='{a2}'")}}])
        }
        "test_prompt_with_embedded_resource" => {
            let uri = arg("resourceUri")?;
            json!([
                {"role": "user", "content": {"type": "resource", "resource": {"uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
                {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}
            ])
        }
        "test_prompt_with_image" => json!([
            {"role": "user", "content": {"type": "image", "data": PNG_BASE64, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}
        ]),
        other => {
            return Err(McpError::invalid_params(
                format!("unknown prompt `{other}`"),
                None,
            ))
        }
    };
    complete_from_json(json!({"messages": messages}))
}
