-- A box and a time range together (the OGC items page, the history
-- search: "this area, that day") in one index. With the box and the day
-- in separate indexes the planner ANDed their bitmaps: on the seeded year
-- a 3 km box in the centre is 75,000 GiST entries (54 ms) to keep 228 of
-- a day's 2,739 incidents; the two-column GiST finds the 228 directly
-- (2 ms; docs/history.md). It serves a box alone as the one-column index
-- did, so that one goes. btree_gist (PostgreSQL's contrib, a trusted
-- extension: the database owner may create it) gives timestamptz its GiST
-- operator class.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX incidents_geom_opened_idx ON incidents USING gist (geom, opened_at);
DROP INDEX incidents_geom_idx;
