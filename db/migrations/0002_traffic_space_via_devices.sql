-- Traffic sensors do not move: a spatial question about traffic ("readings
-- in this area") is answered through devices (GiST on devices.geom) joined
-- to traffic_readings on its primary key (device_id, ts, ...). The GiST
-- index on every reading cost about half of PostgreSQL's per-row work at
-- ingest (measured: 8.8 µs/row with it, 4.4 µs without, 200k-row INSERT).
-- Camera events, emergency signals and unit positions keep theirs: they
-- are fewer, and units move.
DROP INDEX IF EXISTS traffic_readings_geom_idx;
