ALTER TABLE mcp_services DROP COLUMN session_scope, DROP COLUMN session_pool_size;
