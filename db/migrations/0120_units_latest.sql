-- Latest position and status of each responder unit (package geo).
-- unit_positions (ingest) is the history; this is one row per unit, upserted
-- in batches by geo.Units from what ingest hands it, never moved backwards
-- in time (WHERE ts <= EXCLUDED.ts), so several instances converge. A view
-- with DISTINCT ON over the partitioned history would rescan it on every
-- query; a small table with a GiST index answers nearest-unit SQL directly.
CREATE TABLE units_latest (
    unit_id     text PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL,
    ts          timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL,
    ward_code   text,
    speed_kmh   real,
    heading_deg real,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_latest_geom_idx ON units_latest USING gist (geom);
CREATE INDEX units_latest_updated_idx ON units_latest (updated_at);
