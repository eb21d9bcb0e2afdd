-- A per-service limit on one tool call, over the executor's default.
ALTER TABLE mcp_services
    ADD COLUMN call_timeout_secs integer
    CHECK (call_timeout_secs BETWEEN 1 AND 3600);
