// Package geo knows where things are in Hanoi: which ward covers a point,
// whether a point is inside the service area, which operator-drawn geofences
// contain it, and which available responder unit or emergency hospital is
// nearest.
//
// What it owns:
//   - the in-memory indexes: WardIndex (126 wards, immutable), ServiceArea
//     (city outline plus margin, immutable) and the geofence index (rebuilt
//     copy-on-write on every change, swapped atomically);
//   - the tables areas, geofences and units_latest (migrations 01xx) and
//     the HTTP routes under /api/v1/areas, /geofences, /nearest-units and
//     /hospitals;
//   - the goroutine that keeps the geofence index in step with other
//     instances (PostgreSQL LISTEN/NOTIFY, Redis pub/sub when configured).
//
// Every point-in-polygon answer mirrors PostGIS ST_Covers(area, point)
// exactly (pip.go): boundary points are covered, and a point on a border
// shared by several wards gets the lowest ward code among them.
//
// Concurrency: WardIndex, ServiceArea and Hospitals are read-only after
// construction and safe for any number of goroutines; their lookups do not
// allocate. Geofences and Units serialise writers with a mutex and publish
// immutable snapshots through atomic pointers, so readers never block and
// never hold a lock across I/O.
//
// Data from ../shared/data/hanoi is © OpenStreetMap contributors (ODbL);
// anything served from it carries that attribution.
package geo
