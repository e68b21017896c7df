-- Security (package auth): control-room accounts, their browser sessions,
-- API tokens for machine clients, and the audit log.
--
-- Secrets are never stored: a password is kept as an argon2id PHC string,
-- a session or API token as the SHA-256 of the random token handed out.

CREATE TABLE users (
    id                  bigserial PRIMARY KEY,
    -- Names are lower case so "Admin" and "admin" are one account.
    name                text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    role                text NOT NULL CHECK (role IN ('operator', 'dispatcher', 'analyst', 'admin')),
    wards               text[] NOT NULL DEFAULT '{}',  -- empty: every ward
    password_hash       text NOT NULL,
    disabled            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);

CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,            -- sha256 of the opaque token
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    remote_addr text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    role         text NOT NULL CHECK (role IN ('operator', 'dispatcher', 'analyst')),
    wards        text[] NOT NULL DEFAULT '{}',
    token_hash   bytea NOT NULL UNIQUE,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,                -- NULL: until revoked
    revoked_at   timestamptz,
    last_used_at timestamptz
);
-- A name may be reused once the token that had it is revoked.
CREATE UNIQUE INDEX api_tokens_active_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

-- The audit log: who did what, when, from where. Append-only for the
-- application: the trigger below refuses UPDATE, DELETE and TRUNCATE for
-- every role, the owner included. Pruning old entries is a deliberate act
-- by the database owner (ALTER TABLE audit_log DISABLE TRIGGER ...), never
-- something the service can do.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,               -- user name, "token:<name>", "cli:<os user>", "system", "anonymous"
    actor_role  text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    action      text NOT NULL,               -- "login", "login_failed", "incidents:ack", ...
    target      text NOT NULL DEFAULT '',    -- "user/alice", "incident/42", ...
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
