-- What the status monitor observed. Not part of the configuration: changing
-- these does not bump `revision` (the ETag clients use with If-Match).
ALTER TABLE mcp_services
    ADD COLUMN last_seen_at    timestamptz,
    ADD COLUMN last_error      text,
    ADD COLUMN last_checked_at timestamptz;
