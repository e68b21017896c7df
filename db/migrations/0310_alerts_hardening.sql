-- Alert engine hardening (issue 9, finding 6): the incident list's text
-- search `q` (title substring, LIKE wildcards escaped) is served by a
-- trigram index instead of a scan of every incident; its other two arms
-- (id, kind equality) by the primary key and a kind index, so the planner
-- can combine the three.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX incidents_title_trgm_idx ON incidents USING gin (title gin_trgm_ops);
CREATE INDEX incidents_kind_idx ON incidents (kind, opened_at DESC);
