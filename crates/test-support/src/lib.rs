//! Test support for MCPO: real Postgres, NATS and MCP servers, isolated per test.

pub mod answers;
pub mod app;
pub mod client_gen;
pub mod database;
pub mod eventually;
pub mod fixtures;
pub mod gate;
pub mod moto;
pub mod net;
pub mod oidc;
pub mod openapi;

pub use answers::{answer, tool_names};
pub use app::{TestApp, SERVICES};
pub use client_gen::GeneratedClient;
pub use eventually::{eventually, eventually_within};
pub use fixtures::{everything_stdio, fixture_stdio, FixtureHttp, ToolsFile};
pub use moto::MotoServer;
pub use net::closed_port;
pub use openapi::{schemathesis, validate_openapi};
