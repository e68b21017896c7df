-- Telemetry rollups (package ingest, ingest/rollup.go): per device, per
-- hour and per Hanoi day (buckets aligned to UTC+7), the count of readings
-- and the count, sum, min and max of up to three numeric fields of the
-- device's kind (ingest.rollupFields: traffic speed_kmh, volume,
-- occupancy; camera confidence, count; emergency priority; unit
-- speed_kmh). A month of one sensor at 1 h is 744 rows read by primary key
-- instead of ~40,000 readings aggregated per request. One row per ward the
-- device was in during the bucket (units move), so the ward scope applies
-- to rollups as to readings. Kept on a schedule: closed hours from the
-- readings, days from the hours; rolled_until says how far.
CREATE TABLE telemetry_rollups (
    device_id    text NOT NULL,
    bucket       text NOT NULL CHECK (bucket IN ('1h', '1d')),
    bucket_start timestamptz NOT NULL,
    ward_code    text NOT NULL DEFAULT '',
    n            integer NOT NULL,
    a_n integer NOT NULL DEFAULT 0, a_sum float8, a_min real, a_max real,
    b_n integer NOT NULL DEFAULT 0, b_sum float8, b_min real, b_max real,
    c_n integer NOT NULL DEFAULT 0, c_sum float8, c_min real, c_max real,
    PRIMARY KEY (device_id, bucket, bucket_start, ward_code)
);

CREATE TABLE telemetry_rollup_state (
    id            integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    rolled_until  timestamptz NOT NULL,  -- hours before this are in telemetry_rollups
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Rolling days from hours reads one time range of every device.
CREATE INDEX telemetry_rollups_bucket_idx ON telemetry_rollups (bucket, bucket_start);
