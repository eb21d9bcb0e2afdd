//! Shared by every MCPO service: domain types, events, database schema and
//! pool, configuration, errors, the MCP client and telemetry.

pub mod auth;
pub mod aws;
pub mod config;
pub mod db;
pub mod domain;
pub mod egress;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod mcp;
pub mod outbox;
pub mod secrets;
pub mod server;
pub mod telemetry;

pub use config::Settings;
pub use error::{ApiError, CoreError, ErrorCode};
