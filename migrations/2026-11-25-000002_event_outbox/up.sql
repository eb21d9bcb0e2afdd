-- Events waiting to go to NATS. Written in the same transaction as the change
-- they describe, so a committed change always has its event; the relay
-- publishes rows in order (`id` is a uuid v7, time-ordered) with the id as
-- JetStream's `Nats-Msg-Id`, so a row re-sent after a crash is dropped as a
-- duplicate, then stamps `published_at`.
CREATE TABLE event_outbox (
    id           uuid PRIMARY KEY,
    subject      text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);

CREATE INDEX event_outbox_pending_idx ON event_outbox (id) WHERE published_at IS NULL;
