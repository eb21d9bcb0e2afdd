-- How the executor holds a service's MCP sessions: a pool of `session_pool_size`
-- shared by every caller, or (`per_caller`) one session per caller, for
-- stateful servers whose state must not leak between callers.
ALTER TABLE mcp_services
    ADD COLUMN session_pool_size integer NOT NULL DEFAULT 1
        CHECK (session_pool_size BETWEEN 1 AND 16),
    ADD COLUMN session_scope text NOT NULL DEFAULT 'shared'
        CHECK (session_scope IN ('shared', 'per_caller'));
