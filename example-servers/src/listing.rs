//! A server that lists the tools it is given (a real server's listing, replayed) and answers each call
//! with a short text naming the tool: an upstream for tool search's evaluation, where what matters is what
//! the tools say about themselves, not what they do.

use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::Arc;

/// Lists `tools` as given.
#[derive(Clone)]
pub struct Listing {
    tools: Arc<ListToolsResult>,
}

impl Listing {
    /// A server listing `tools` (MCP tool definitions); the ones rmcp cannot read are left out and counted.
    pub fn new(tools: &[Value]) -> (Self, usize) {
        let read: Vec<Tool> = tools
            .iter()
            .filter_map(|t| serde_json::from_value(t.clone()).ok())
            .collect();
        let unreadable = tools.len() - read.len();
        let listing = ListToolsResult::with_all_items(read);
        (
            Self {
                tools: Arc::new(listing),
            },
            unreadable,
        )
    }
}

impl ServerHandler for Listing {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcplex-example-listing", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok((*self.tools).clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = format!("{} was called", request.name);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}
