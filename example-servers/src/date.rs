//! The `date` example server: today's date, the time in a zone, and days between dates.

use chrono::{NaiveDate, Utc};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// An IANA time zone.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct Zone {
    /// IANA time zone name, e.g. `Europe/Paris`; UTC when absent.
    pub timezone: Option<String>,
}

/// Two calendar dates.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct DatePair {
    /// First date, `YYYY-MM-DD`.
    pub start: String,
    /// Second date, `YYYY-MM-DD`.
    pub end: String,
}

/// The date server.
#[derive(Debug, Clone)]
pub struct Date {
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

impl Date {
    /// A new server with its tools registered.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

impl Default for Date {
    fn default() -> Self {
        Self::new()
    }
}

fn text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.into())])
}

fn refuse(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// A date argument that is not `YYYY-MM-DD`.
#[derive(Debug, thiserror::Error)]
#[error("{field} `{value}` is not a YYYY-MM-DD date: {source}")]
struct BadDate {
    field: &'static str,
    value: String,
    source: chrono::ParseError,
}

fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, BadDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|source| BadDate {
        field,
        value: value.into(),
        source,
    })
}

#[tool_router]
impl Date {
    /// Today's date in UTC.
    #[tool(description = "Today's date (UTC), as YYYY-MM-DD")]
    fn today(&self) -> CallToolResult {
        text(Utc::now().format("%Y-%m-%d").to_string())
    }

    /// The current time in a zone.
    #[tool(description = "The current date and time in an IANA time zone (default UTC), RFC 3339")]
    fn now(&self, Parameters(Zone { timezone }): Parameters<Zone>) -> CallToolResult {
        let name = timezone.unwrap_or_else(|| "UTC".into());
        match name.parse::<chrono_tz::Tz>() {
            Ok(zone) => text(Utc::now().with_timezone(&zone).to_rfc3339()),
            Err(_) => refuse(format!("`{name}` is not an IANA time zone name (e.g. Europe/Paris)")),
        }
    }

    /// Days from start to end.
    #[tool(description = "Number of days from start to end (negative when end is earlier); dates as YYYY-MM-DD")]
    fn days_between(&self, Parameters(DatePair { start, end }): Parameters<DatePair>) -> CallToolResult {
        let (start, end) = match (parse_date("start", &start), parse_date("end", &end)) {
            (Ok(start), Ok(end)) => (start, end),
            (Err(e), _) | (_, Err(e)) => return refuse(e.to_string()),
        };
        text((end - start).num_days().to_string())
    }
}

#[tool_handler]
impl ServerHandler for Date {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcplex-example-date", env!("CARGO_PKG_VERSION")))
            .with_instructions("Dates and time zones.")
    }
}
