// @generated automatically by Diesel CLI.

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        channel_id -> Nullable<Uuid>,
        token_id -> Nullable<Uuid>,
        user_id -> Nullable<Text>,
        action -> Text,
        result -> Text,
        moving_factor -> Nullable<Int8>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    channels (id) {
        id -> Uuid,
        name -> Text,
        key_mac -> Bytea,
        key_mac_version -> Int4,
        client_cert_sha256 -> Array<Text>,
        allowed_networks -> Array<Text>,
        disabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tokens (id) {
        id -> Uuid,
        channel_id -> Uuid,
        user_id -> Text,
        kind -> Text,
        algorithm -> Text,
        digits -> Int2,
        period -> Int4,
        next_factor -> Int8,
        drift -> Int4,
        wrapped_seed -> Nullable<Bytea>,
        kek_version -> Nullable<Int4>,
        hsm_label -> Nullable<Text>,
        issuer -> Nullable<Text>,
        failure_count -> Int4,
        locked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(tokens -> channels (channel_id));

diesel::allow_tables_to_appear_in_same_query!(audit_log, channels, tokens,);
