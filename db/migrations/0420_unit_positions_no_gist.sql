-- No query reads unit_positions by space: the nearest-unit and unit-map
-- questions are answered from units_latest (one row per unit, its own
-- GiST index: 0120), and a unit's history is read by its primary key
-- (device_id, ts, ...) through /devices/{id}/telemetry and the rollups.
-- The GiST index on every position was about half of PostgreSQL's
-- per-row work at ingest, and unit positions are a third of the load mix.
-- (Camera events and emergency signals keep theirs: they are few.)
DROP INDEX IF EXISTS unit_positions_geom_idx;
