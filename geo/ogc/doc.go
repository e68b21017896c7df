// Package ogc serves the operations centre's data to GIS clients (QGIS,
// GDAL/OGR, ArcGIS) as OGC API – Features at /ogc: Part 1 Core with
// GeoJSON and OpenAPI 3.0, Part 2 (CRS by reference: CRS84, EPSG:4326 in
// latitude-first order, VN-2000 / UTM 48N EPSG:3405) and Part 3 filtering
// with CQL2 text (basic-cql2 plus LIKE, IN and BETWEEN) over declared
// queryables.
//
// Its one job is translation: parameters and filters in, GeoJSON out. It
// owns no table and writes no query over the data: the collections call
// the query functions of the packages that own them, with the caller's
// ward scope, so an OGC page selects exactly as the JSON API does —
//
//	incidents  alerts.Store.List      (a CQL2 filter goes in IncidentFilter.Where)
//	devices    ingest.Reader.Devices  (DeviceFilter.Where)
//	wards      geo.ListAreas          (AreaFilter.Where)
//
// A filter is parsed into a small tree (cql2.go), checked against the
// collection's queryables, and compiled to SQL over whitelisted columns
// only; every value is bound as a parameter, never written into the SQL.
// The parser caps a filter's size (4096 bytes), nesting (20) and
// predicates (64), so a hostile filter costs little. Its only own
// statement is ST_Transform, run once per page for EPSG:3405 output, and
// for EPSG:3405 bboxes inside the source's query.
//
// Paging is by the sources' keyset cursors, wrapped in a token that also
// remembers up to eight earlier pages for prev links. numberMatched is
// exact for wards and omitted for incidents and devices (counting a
// filtered million rows on every page costs more than the page).
//
// Concurrency: a Service is immutable after New and safe for any number
// of goroutines.
package ogc
