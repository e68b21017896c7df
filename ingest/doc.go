// Package ingest turns MQTT telemetry into rows in PostgreSQL/PostGIS, with
// nothing lost and nothing stored twice.
//
// The path of a message (CONTRACT section 1):
//
//	broker ─▶ Subscriber.onMessage (paho's one router goroutine: take the message's
//	          bytes from the held-bytes budget, hand it to a bounded queue)
//	       ─▶ decoders ─▶ Ingester.Submit: parse topic, registration, Decode and
//	          validate, ward lookup  ─▶ bounded buffer
//	       ─▶ batcher: up to BatchSize items or BatchWait
//	       ─▶ writers (Writers goroutines): one transaction per batch
//	          COPY into the day-partitioned observation tables, upsert devices,
//	          record rejections ─▶ COMMIT ─▶ acknowledge every message of the batch
//
// Emergency signals also come on a second connection of their own
// (<prefix>/emergency/# only), so they never queue behind telemetry; the
// telemetry connection's copies are acknowledged once their twin has
// committed, or written if it does not come (twins.go).
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
//     (SQLSTATE class 22, 23, XX000) is isolated by splitting its batch and
//     stored as an 'unstorable' rejection; a message ingest panics on is
//     isolated the same way and stored as 'internal_error'.
//   - A database fault is not bad input: any other failure (the database
//     away, a missing permission, table or column) is retried with backoff,
//     nothing is acknowledged meanwhile, and Healthy (so /readyz) says so.
//   - Memory is bounded: by bytes (MQTTConfig.MaxHeldBytes: the router
//     stops reading the broker when it is used up), by messages (Submit
//     blocks when the buffer is full), and per device (the device cache is
//     capped and swept; require_registered_devices admits only registered
//     devices). An oversized payload is kept as its first 16 KiB.
//
// It owns the tables devices, traffic_readings, camera_events,
// emergency_signals, unit_positions and ingest_rejects (db/migrations/0001,
// 0003), and prunes ingest_rejects by age and count.
// Ingester and Subscriber are safe for concurrent use; each has one Run.
package ingest
