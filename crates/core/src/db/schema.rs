// Kept in step with `migrations/` by hand (diesel print-schema needs libpq);
// the `schema_matches_migrations` test checks every column against the database.

diesel::table! {
    mcp_services (id) {
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        status -> Text,
        transport -> Jsonb,
        server_info -> Nullable<Jsonb>,
        protocol_version -> Nullable<Text>,
        instructions -> Nullable<Text>,
        revision -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_seen_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        last_checked_at -> Nullable<Timestamptz>,
        call_timeout_secs -> Nullable<Int4>,
        session_pool_size -> Int4,
        session_scope -> Text,
    }
}

diesel::table! {
    tool_schemas (id) {
        id -> Uuid,
        schema_type -> Text,
        input_schema -> Jsonb,
        output_schema -> Nullable<Jsonb>,
        content_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tools (id) {
        id -> Uuid,
        service_id -> Uuid,
        name -> Text,
        title -> Nullable<Text>,
        description -> Nullable<Text>,
        endpoint -> Text,
        annotations -> Nullable<Jsonb>,
        schema_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(tools -> mcp_services (service_id));
diesel::joinable!(tools -> tool_schemas (schema_id));

diesel::allow_tables_to_appear_in_same_query!(
    mcp_services,
    tool_schemas,
    tools,
    event_outbox,
    openapi_documents,
    api_keys,
    audit_log,
    config_snapshots,
    openapi_pushes
);

diesel::table! {
    event_outbox (id) {
        id -> Uuid,
        subject -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    openapi_documents (version) {
        version -> Int8,
        content_hash -> Text,
        document -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        permissions -> Array<Text>,
        created_by -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        actor -> Text,
        actor_kind -> Text,
        action -> Text,
        target -> Nullable<Text>,
        request_id -> Nullable<Text>,
        client_addr -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    config_snapshots (id) {
        id -> Uuid,
        service_id -> Uuid,
        service_name -> Text,
        revision -> Int8,
        deleted -> Bool,
        object_key -> Text,
        content -> Jsonb,
        created_at -> Timestamptz,
        uploaded_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    openapi_pushes (target, version) {
        target -> Text,
        version -> Int8,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        superseded_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        pushed_at -> Nullable<Timestamptz>,
    }
}
