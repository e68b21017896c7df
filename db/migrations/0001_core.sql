-- Core schema: the device registry, one table per kind of observation and
-- the record of rejected input. Observation tables are partitioned by day
-- on ts (see db/partitions.go); their primary key doubles as the
-- idempotency key, so a redelivered message never makes a second row:
-- (device_id, ts, msg_id) where msg_id is the message's optional "id" or ''.

CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE devices (
    id                text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('traffic', 'camera', 'emergency', 'unit', 'unknown')),
    fixed_geom        geometry(Point, 4326),  -- registered position; readings may then omit lat/lon
    geom              geometry(Point, 4326),  -- last known position
    ward_code         text,
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,   -- arrival time of the latest message (within device_touch_interval)
    last_ts           timestamptz,            -- observation time of the latest reading
    interval_s        integer,                -- declared reporting interval, for silence detection
    online            boolean NOT NULL DEFAULT true,
    status_ts         timestamptz,            -- ts of the latest city/status message
    messages          bigint NOT NULL DEFAULT 0
);
CREATE INDEX devices_geom_idx ON devices USING gist (geom);
CREATE INDEX devices_ward_idx ON devices (ward_code);
CREATE INDEX devices_kind_idx ON devices (kind, id);

CREATE TABLE traffic_readings (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    msg_id       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    geom         geometry(Point, 4326) NOT NULL,
    ward_code    text,
    speed_kmh    real NOT NULL,
    volume       integer NOT NULL,
    occupancy    real NOT NULL,
    interval_s   integer NOT NULL,
    lane         text,
    heading_deg  real,
    PRIMARY KEY (device_id, ts, msg_id)
) PARTITION BY RANGE (ts);

CREATE TABLE camera_events (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    msg_id       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    geom         geometry(Point, 4326) NOT NULL,
    ward_code    text,
    event        text NOT NULL,
    confidence   real NOT NULL,
    count        integer,
    snapshot_url text,
    zone         text,
    PRIMARY KEY (device_id, ts, msg_id)
) PARTITION BY RANGE (ts);

CREATE TABLE emergency_signals (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    msg_id       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    geom         geometry(Point, 4326) NOT NULL,
    ward_code    text,
    type         text NOT NULL,
    priority     smallint NOT NULL,
    channel      text NOT NULL,
    note         text,
    caller_ref   text,
    PRIMARY KEY (device_id, ts, msg_id)
) PARTITION BY RANGE (ts);

CREATE TABLE unit_positions (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    msg_id       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    geom         geometry(Point, 4326) NOT NULL,
    ward_code    text,
    kind         text NOT NULL,
    status       text NOT NULL,
    speed_kmh    real,
    heading_deg  real,
    PRIMARY KEY (device_id, ts, msg_id)
) PARTITION BY RANGE (ts);

-- Time and space indexes on every observation table (created on each
-- partition by PostgreSQL). BRIN on ts: rows arrive roughly in time order,
-- so a tiny index serves time-range scans; GiST for bbox and radius queries.
CREATE INDEX traffic_readings_ts_idx   ON traffic_readings  USING brin (ts);
CREATE INDEX traffic_readings_geom_idx ON traffic_readings  USING gist (geom);
CREATE INDEX camera_events_ts_idx      ON camera_events     USING brin (ts);
CREATE INDEX camera_events_geom_idx    ON camera_events     USING gist (geom);
CREATE INDEX emergency_signals_ts_idx  ON emergency_signals USING brin (ts);
CREATE INDEX emergency_signals_geom_idx ON emergency_signals USING gist (geom);
CREATE INDEX unit_positions_ts_idx     ON unit_positions    USING brin (ts);
CREATE INDEX unit_positions_geom_idx   ON unit_positions    USING gist (geom);

-- Rejected input, kept for operators and vendors to see what went wrong.
-- A redelivery of the same bytes on the same topic updates the existing
-- row instead of adding one: digest = sha256(topic || 0x00 || payload),
-- item = index in a JSON array batch (-1: the whole message).
CREATE TABLE ingest_rejects (
    id               bigserial PRIMARY KEY,
    received_at      timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    deliveries       integer NOT NULL DEFAULT 1,
    topic            text NOT NULL,
    device_id        text,
    item             integer NOT NULL DEFAULT -1,
    reason           text NOT NULL,
    detail           text NOT NULL,
    payload          bytea NOT NULL,   -- cut at 16 KiB
    payload_size     integer NOT NULL,
    digest           bytea NOT NULL,
    UNIQUE (digest, item)
);
CREATE INDEX ingest_rejects_received_idx ON ingest_rejects (received_at DESC, id DESC);
CREATE INDEX ingest_rejects_reason_idx ON ingest_rejects (reason, received_at DESC);
