-- Where each version of the platform document went: one row per push
-- target (`dir:/path`, `s3://bucket/prefix`, `apigateway:{rest api id}/{stage}`)
-- and version, written by the publisher replica that pushes (one at a time,
-- under an advisory lock). A row is created at the first attempt, counts
-- attempts, keeps the last error (also after a later success) and is stamped
-- `pushed_at` once the target has the version. Starting a newer version
-- marks older unpushed ones `superseded_by` it: they are never pushed.
-- Failed attempts of a target: sum(attempts) - count(pushed_at).
CREATE TABLE openapi_pushes (
    target        text NOT NULL,
    version       bigint NOT NULL REFERENCES openapi_documents (version),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    superseded_by bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    pushed_at     timestamptz,
    PRIMARY KEY (target, version)
);
