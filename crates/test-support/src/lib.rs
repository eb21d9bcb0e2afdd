//! Test support for MCPO: real Postgres, NATS and MCP servers, isolated per test.

pub mod app;
pub mod database;
pub mod eventually;
pub mod fixtures;
pub mod gate;
pub mod oidc;
pub mod openapi;

pub use app::TestApp;
pub use eventually::{eventually, eventually_within};
pub use fixtures::{everything_stdio, fixture_stdio, FixtureHttp, ToolsFile};
pub use openapi::{schemathesis, validate_openapi};
