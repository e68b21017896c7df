-- Operator-drawn geofences (package geo). A polygon fence stores its
-- MultiPolygon; a circle stores its centre Point and radius_m. Every change
-- bumps geofence_state.version and NOTIFYs ioc_geofences with it, so every
-- instance reloads its in-memory index (and polls the version as a
-- fallback for a missed notification). The trigger catches manual SQL too.
CREATE TABLE geofences (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',
    shape        text NOT NULL CHECK (shape IN ('polygon', 'circle')),
    geom         geometry(Geometry, 4326) NOT NULL,
    radius_m     double precision,
    active_hours jsonb NOT NULL DEFAULT '[]',
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    updated_by   text NOT NULL DEFAULT '',
    CHECK ((shape = 'circle') = (radius_m IS NOT NULL)),
    CHECK (shape <> 'circle' OR GeometryType(geom) = 'POINT'),
    CHECK (shape <> 'polygon' OR GeometryType(geom) = 'MULTIPOLYGON')
);
CREATE INDEX geofences_geom_idx ON geofences USING gist (geom);
CREATE INDEX geofences_tags_idx ON geofences USING gin (tags);

CREATE TABLE geofence_state (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO geofence_state VALUES (true, 0);

CREATE FUNCTION geofences_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    UPDATE geofence_state SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('ioc_geofences', v::text);
    RETURN NULL;
END $$;

CREATE TRIGGER geofences_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON geofences
    FOR EACH STATEMENT EXECUTE FUNCTION geofences_changed();
