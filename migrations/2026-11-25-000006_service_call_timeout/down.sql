ALTER TABLE mcp_services DROP COLUMN call_timeout_secs;
