-- Every distinct platform OpenAPI document the publisher built, numbered.
-- A rebuild identical to the latest version adds nothing; `?version=N`
-- serves an older one.
CREATE TABLE openapi_documents (
    version      bigint PRIMARY KEY,
    content_hash text NOT NULL,
    document     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
