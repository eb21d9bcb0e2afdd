-- Versioned snapshots of service configurations on their way to the config
-- store (a directory or S3). Each is written in the transaction of the
-- change it records, so a committed registration, update or delete always
-- has its snapshot; the registry's uploader writes pending rows to the store
-- in `id` order (uuid v7, creation order), records failures on the row and
-- stamps `uploaded_at`. No foreign key: a delete's tombstone outlives the
-- service. `content` holds transports as stored, secrets sealed.
CREATE TABLE config_snapshots (
    id           uuid PRIMARY KEY,
    service_id   uuid NOT NULL,
    service_name text NOT NULL,
    revision     bigint NOT NULL,
    deleted      boolean NOT NULL DEFAULT false,
    object_key   text NOT NULL,
    content      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_at  timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);

CREATE INDEX config_snapshots_pending_idx ON config_snapshots (id) WHERE uploaded_at IS NULL;
