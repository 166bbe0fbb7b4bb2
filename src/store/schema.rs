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
        challenge_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    challenge_counts (channel_id, ends_at) {
        channel_id -> Uuid,
        ends_at -> Timestamptz,
        created -> Int4,
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
        may_receive_otp -> Bool,
        message_budget -> Nullable<Int8>,
        account_number -> Nullable<Text>,
    }
}

diesel::table! {
    freezes (channel_id, destination) {
        channel_id -> Uuid,
        destination -> Text,
        frozen_until -> Timestamptz,
    }
}

diesel::table! {
    challenges (id) {
        id -> Uuid,
        channel_id -> Uuid,
        user_id -> Nullable<Text>,
        destination -> Text,
        delivery -> Text,
        app -> Nullable<Text>,
        code_mac -> Bytea,
        mac_version -> Int4,
        digits -> Int2,
        expires_at -> Timestamptz,
        failure_count -> Int4,
        state -> Text,
        delivery_status -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    imports (channel_id, file_mac) {
        channel_id -> Uuid,
        file_mac -> Bytea,
        total -> Int8,
        imported -> Int8,
        started_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        challenge_id -> Uuid,
        kind -> Text,
        destination -> Text,
        sealed_message -> Nullable<Bytea>,
        key_version -> Int4,
        status -> Text,
        gateway_index -> Int4,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        expires_at -> Timestamptz,
        last_error -> Nullable<Text>,
        sent_via -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    templates (ref_id) {
        ref_id -> Text,
        channel_id -> Uuid,
        lang -> Text,
        body -> Text,
        created_at -> Timestamptz,
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

diesel::table! {
    users (channel_id, user_id) {
        channel_id -> Uuid,
        user_id -> Text,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(challenge_counts -> channels (channel_id));
diesel::joinable!(challenges -> channels (channel_id));
diesel::joinable!(freezes -> channels (channel_id));
diesel::joinable!(imports -> channels (channel_id));
diesel::joinable!(outbox -> challenges (challenge_id));
diesel::joinable!(templates -> channels (channel_id));
diesel::joinable!(tokens -> channels (channel_id));
diesel::joinable!(users -> channels (channel_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_log,
    challenge_counts,
    challenges,
    channels,
    freezes,
    outbox,
    templates,
    tokens,
    users,
);
