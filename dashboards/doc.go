// Package dashboards serves the control-room web app: the operator's live
// map and incident queue, the dispatcher's incident detail, the analyst's
// history search, and the login page (docs/dashboards.md).
//
// The app itself lives in web/ (Preact + htm, MapLibre GL), is built by
// esbuild into web/dist and committed there, so that `go build` embeds it
// on a fresh clone without node or npm. CI rebuilds it and checks that the
// committed bundle matches the sources (web/build.mjs --check).
//
// What it owns: the routes GET / (the page), GET /assets/{file} (the
// bundle, content-hashed names, cached for a year) and GET
// /app-config.json (tile URL, state targets, default locale). They are
// public: the page holds no data; everything it shows comes from the
// authenticated API and /ws, which enforce roles and ward scope.
//
// Concurrency: a Dashboard is immutable after New and safe for any number
// of goroutines.
package dashboards
