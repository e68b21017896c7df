// Package alerts is the alert engine: it turns committed telemetry into
// incidents that operators work, and runs their lifecycle.
//
// Its one job, in steps:
//
//	emergency signal: Engine.InTx inside ingest's own transaction opens or
//	  joins its incident (stateless rules: no queue, no second transaction);
//	  after the commit the event goes to this instance's subscribers at once
//	ingest commit ─▶ Engine.Observe (the hook) ─▶ bounded queue, two lanes
//	  (emergency batches first; when full, Observe waits: backpressure)
//	  ─▶ evaluation goroutine: the rules of deploy/rules.json, compiled
//	     (threshold held over a window per device, count within a radius and
//	     window, event match, emergency signal, geofence filters)
//	  ─▶ triggers ─▶ writer goroutine: one transaction per trigger that
//	     opens an incident or joins an open one of a compatible kind nearby
//	     (correlation), with its evidence, timeline entry, event and
//	     notification
//	maintenance goroutine (every Tick): silence (device_offline) from the
//	  devices table, auto-resolution of incidents whose conditions cleared,
//	  escalation of unacknowledged incidents, rule changes of other instances
//	notifier goroutine: drains the notification outbox to a webhook
//	events goroutine: LISTENs for committed incident events and hands them
//	  to subscribers (the websocket layer)
//
// It owns the tables alert_rules, incidents, incident_evidence,
// incident_timeline, incident_conditions, incident_seq, incident_events and
// alert_outbox (db/migrations/0300_alerts.sql), and the routes under
// /api/v1/incidents and /api/v1/rules (Engine.Register).
//
// Guarantees and where they come from:
//   - Evidence is keyed by the observation (device_id, ts, msg_id), so a
//     replayed or redelivered observation never opens a second incident
//     nor adds evidence twice.
//   - Restart: the engine marks the windows whose conditions hold open
//     incidents as fired (incident_conditions), then replays the
//     observation tables over the longest rule window before taking new
//     batches; what a crash lost between ingest's commit and evaluation is
//     evaluated then.
//   - Every change of an incident (by a rule or a person) writes its
//     timeline entry, its event and, for people, its audit entry in the
//     same transaction. Event seq comes from a one-row counter locked until
//     commit, so seq order is commit order, city-wide.
//   - Open-or-join runs under a transaction-scoped advisory lock, so two
//     triggers (or two instances) never both open an incident for one event.
//
// Concurrency: Observe is safe from any goroutine; when the queue is full
// it waits for room (never skips a committed observation), which cannot
// deadlock because it runs after the commit holding nothing and the
// evaluator never waits on ingest. A panic in evaluation, in a write or
// in InTx is recovered, logged with its stack and counted. The
// evaluator's state (windows per device and rule) belongs to the one
// evaluation goroutine and needs no lock. Store, Events and Notifier are
// safe for concurrent use; Events holds a mutex over its subscriber set,
// never across I/O. The rule set in force is an immutable value swapped
// atomically. With a shared MQTT subscription and Config.Redis, every
// instance forwards what it committed to a Redis stream and the one
// instance holding the leader lock evaluates it (shared.go), so a device's
// windows have one home; without Redis each instance evaluates only what
// it received.
package alerts
