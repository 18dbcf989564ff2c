//! The `math` example server: four arithmetic tools.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// Two operands.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Operands {
    /// Left operand.
    pub a: f64,
    /// Right operand.
    pub b: f64,
}

/// The math server.
#[derive(Debug, Clone)]
pub struct Math {
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

impl Math {
    /// A new server with its tools registered.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

impl Default for Math {
    fn default() -> Self {
        Self::new()
    }
}

fn number(value: f64) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

#[tool_router]
impl Math {
    /// a + b
    #[tool(description = "Add two numbers: a + b")]
    fn add(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> CallToolResult {
        number(a + b)
    }

    /// a - b
    #[tool(description = "Subtract b from a: a - b")]
    fn subtract(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> CallToolResult {
        number(a - b)
    }

    /// a * b
    #[tool(description = "Multiply two numbers: a * b")]
    fn multiply(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> CallToolResult {
        number(a * b)
    }

    /// a / b, refusing b = 0
    #[tool(description = "Divide a by b: a / b (b must not be zero)")]
    fn divide(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> CallToolResult {
        if b == 0.0 {
            return CallToolResult::error(vec![ContentBlock::text("division by zero: b must not be 0")]);
        }
        number(a / b)
    }
}

#[tool_handler]
impl ServerHandler for Math {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcplex-example-math", env!("CARGO_PKG_VERSION")))
            .with_instructions("Arithmetic on two numbers.")
    }
}
