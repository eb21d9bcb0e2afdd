//! What MCPO is about: services, their tools and how to reach them.

pub mod naming;
pub mod schema_hash;
pub mod service;
pub mod transport;

pub use service::{
    DiscoveredServer, DiscoveredTool, ServiceStatus, ServiceView, SessionScope, ToolView,
};
pub use transport::TransportConfig;
