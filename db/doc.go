// Package db opens the PostgreSQL/PostGIS pool, applies the schema and keeps
// the daily telemetry partitions.
//
// The schema is a list of numbered SQL files embedded in the binary
// (migrations/NNNN_name.sql). Migrate applies the ones not yet recorded in
// schema_migrations, each in its own transaction, under an advisory lock so
// several instances starting together apply each file once. Number ranges
// by owner: 0001-0099 core and ingest, 0100-0199 geo, 0200-0299 security,
// 0300-0399 alerts.
//
// Telemetry tables are partitioned by day on their observation time
// (PartitionedTables). EnsurePartitions creates the partitions a time range
// needs and DropPartitionsBefore removes old ones, which is how retention
// stays cheap: dropping a day is a catalogue change, not a DELETE.
//
// Everything here is safe for concurrent use; it holds no state of its own.
package db
