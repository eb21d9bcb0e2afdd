-- An MCP server registered with MCPO. `transport` holds the connection settings
-- (stdio command or URL); `revision` grows with every change of the service or
-- its tools so consumers of events can drop stale ones.
CREATE TABLE mcp_services (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    description      text,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'degraded', 'unreachable', 'disabled')),
    transport        jsonb NOT NULL,
    server_info      jsonb,
    protocol_version text,
    instructions     text,
    revision         bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Input and output schemas of tools. Many servers repeat the same schema for
-- many tools (and many deployments register the same server), so identical
-- schema pairs are stored once, keyed by the hash of their canonical JSON.
CREATE TABLE tool_schemas (
    id            uuid PRIMARY KEY,
    schema_type   text NOT NULL DEFAULT 'json_schema',
    input_schema  jsonb NOT NULL,
    output_schema jsonb,
    content_hash  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A tool of a service. `name` is the MCP tool name; `endpoint` is the path the
-- executor serves it on (`/tools/{service}/{endpoint name}`), which can differ
-- from the name when the name is not a safe URL path segment.
CREATE TABLE tools (
    id          uuid PRIMARY KEY,
    service_id  uuid NOT NULL REFERENCES mcp_services (id) ON DELETE CASCADE,
    name        text NOT NULL,
    title       text,
    description text,
    endpoint    text NOT NULL,
    annotations jsonb,
    schema_id   uuid NOT NULL REFERENCES tool_schemas (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service_id, name),
    UNIQUE (endpoint)
);

CREATE INDEX tools_schema_id_idx ON tools (schema_id);
