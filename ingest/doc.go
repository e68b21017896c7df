// Package ingest turns MQTT telemetry into rows in PostgreSQL/PostGIS, with
// nothing lost and nothing stored twice.
//
// The path of a message (CONTRACT section 1):
//
//	broker ─▶ Subscriber.onMessage (one goroutine per message, paho's router never waits)
//	       ─▶ Ingester.Submit: parse topic, Decode and validate, ward lookup  ─▶ bounded buffer
//	       ─▶ batcher: up to BatchSize items or BatchWait
//	       ─▶ writers (Writers goroutines): one transaction per batch
//	          COPY into the day-partitioned observation tables, upsert devices,
//	          record rejections ─▶ COMMIT ─▶ acknowledge every message of the batch
//
// Guarantees and where they come from:
//   - A message is acknowledged only after its batch commits, so a crash at
//     any instant leaves it with the broker, which redelivers it.
//   - Redelivery stores nothing twice: observation tables are keyed by
//     (device_id, ts, msg_id); a batch that meets an existing key is
//     rewritten through staging tables with ON CONFLICT DO NOTHING, and
//     rejections are keyed by a digest of topic and payload.
//   - Bad input never stops ingest: every refusal is a row in
//     ingest_rejects with its reason; a message the database itself refuses
//     is isolated by splitting its batch and stored as an 'unstorable'
//     rejection.
//   - Memory is bounded: Submit blocks when the buffer is full; paho holds
//     the message unacknowledged and the broker stops sending once its
//     in-flight window (deploy/mosquitto.conf) is used up.
//
// It owns the tables devices, traffic_readings, camera_events,
// emergency_signals, unit_positions and ingest_rejects (db/migrations/0001).
// Ingester and Subscriber are safe for concurrent use; each has one Run.
package ingest
