-- History (issue 11): indexes for the analysts' queries, all served by
-- alerts.IncidentFilter (docs/history.md has the plans).
--
-- Statistics and response times over a span read only this index
-- (index-only scans): opened_at bounds the span, the included columns
-- are what they group, filter and measure.
CREATE INDEX incidents_history_idx ON incidents (opened_at)
    INCLUDE (ward_code, kind, severity, status, acknowledged_at, dispatched_at, resolved_at);
-- A bounding box over a long span (a year of one street).
CREATE INDEX incidents_geom_idx ON incidents USING gist (geom);
-- updated_since (a client catching up on changes).
CREATE INDEX incidents_updated_idx ON incidents (updated_at);
-- active=true in list order: the live queue and the websocket snapshot.
CREATE INDEX incidents_active_idx ON incidents (opened_at DESC, id DESC) WHERE status <> 'resolved';
