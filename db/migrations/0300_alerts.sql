-- Alert engine (package alerts): the active rule set, incidents with their
-- evidence, timeline and live conditions, the city-wide incident event log
-- and the notification outbox.

-- One row: the rule set every instance runs. version increases on each
-- change; instances poll it and reload.
CREATE TABLE alert_rules (
    id          integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version     bigint NOT NULL,
    body        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

CREATE TABLE incidents (
    id               text PRIMARY KEY,           -- URL-safe, time-ordered (ULID alphabet)
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('minor', 'moderate', 'severe', 'extreme')),
    status           text NOT NULL CHECK (status IN ('new', 'acknowledged', 'dispatched', 'resolved')),
    resolution       text CHECK (resolution IN ('handled', 'false_alarm', 'duplicate')),
    title            text NOT NULL DEFAULT '',
    geom             geometry(Point, 4326) NOT NULL,
    ward_code        text,
    opened_by        text NOT NULL,              -- "rule:<id>" or a user name
    auto_resolve     boolean NOT NULL,           -- raised by conditions only: resolves itself
    opened_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    dispatched_at    timestamptz,
    resolved_at      timestamptz,
    last_evidence_at timestamptz NOT NULL,       -- observation time of the newest evidence
    escalation_level integer NOT NULL DEFAULT 0,
    escalated_at     timestamptz,
    units            text[] NOT NULL DEFAULT '{}',
    version          bigint NOT NULL DEFAULT 1
);
CREATE INDEX incidents_open_idx ON incidents USING gist (geom) WHERE status <> 'resolved';
CREATE INDEX incidents_opened_idx ON incidents (opened_at DESC, id DESC);
CREATE INDEX incidents_ward_idx ON incidents (ward_code, opened_at DESC);
CREATE INDEX incidents_new_idx ON incidents (opened_at) WHERE status = 'new';

-- Evidence: an observation belongs to at most one incident. The key is the
-- observation's identity, so a replayed or redelivered observation never
-- adds evidence twice nor opens a second incident.
CREATE TABLE incident_evidence (
    incident_id  text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    msg_id       text NOT NULL DEFAULT '',
    kind         text NOT NULL,                  -- traffic, camera, emergency, unit, status, silence, manual
    rule_id      text NOT NULL,
    added_at     timestamptz NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    geom         geometry(Point, 4326),
    PRIMARY KEY (device_id, ts, msg_id)
);
CREATE INDEX incident_evidence_incident_idx ON incident_evidence (incident_id, ts);

CREATE TABLE incident_timeline (
    id           bigserial PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,                  -- user name or "rule:<id>" or "system"
    action       text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_timeline_incident_idx ON incident_timeline (incident_id, id);

-- Conditions that hold an auto-resolving incident open: a device's held
-- threshold, a device's silence. An incident resolves itself when none is
-- active and the last cleared long enough ago.
CREATE TABLE incident_conditions (
    rule_id      text NOT NULL,
    device_id    text NOT NULL,
    incident_id  text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    active       boolean NOT NULL,
    changed_at   timestamptz NOT NULL,               -- observation time of the last change
    resolve_after timestamptz,                       -- when cleared: changed_at + the rule's clear_for
    PRIMARY KEY (rule_id, device_id, incident_id)
);
CREATE INDEX incident_conditions_incident_idx ON incident_conditions (incident_id);

-- The city-wide order of incident changes. seq comes from the one-row
-- counter below, updated inside each change's transaction: the row lock
-- serialises the changes, so seq order is commit order (a sequence would
-- not be).
CREATE TABLE incident_seq (
    id   integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    seq  bigint NOT NULL
);
INSERT INTO incident_seq (seq) VALUES (0);

CREATE TABLE incident_events (
    seq          bigint PRIMARY KEY,
    at           timestamptz NOT NULL,
    incident_id  text NOT NULL,
    op           text NOT NULL CHECK (op IN ('opened', 'updated', 'resolved')),
    incident     jsonb NOT NULL
);
CREATE INDEX incident_events_at_idx ON incident_events (at);

-- Notification outbox, drained by the webhook notifier.
CREATE TABLE alert_outbox (
    id           bigserial PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    incident_id  text NOT NULL,
    reason       text NOT NULL,                  -- opened, escalated
    payload      jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL,
    last_error   text,
    sent_at      timestamptz
);
CREATE INDEX alert_outbox_pending_idx ON alert_outbox (next_at) WHERE state = 'pending';
