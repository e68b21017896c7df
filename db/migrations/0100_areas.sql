-- Administrative areas (Hanoi's 126 wards and communes since 2025-07-01),
-- loaded by `iocd areas import FILE.geojson` or at start from
-- IOC_AREAS_FILE when the table is empty. Owned by package geo, which keeps
-- the same shapes in memory (geo.WardIndex) to tag observations.
CREATE TABLE areas (
    code        text PRIMARY KEY,               -- official 5-digit unit code
    name        text NOT NULL,                  -- Vietnamese, e.g. "Phường Ba Đình"
    name_en     text NOT NULL DEFAULT '',
    kind        text NOT NULL DEFAULT '',       -- ward | commune
    population  integer,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX areas_geom_idx ON areas USING gist (geom);
