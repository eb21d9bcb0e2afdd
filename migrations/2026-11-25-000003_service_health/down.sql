ALTER TABLE mcp_services DROP COLUMN last_seen_at, DROP COLUMN last_error, DROP COLUMN last_checked_at;
