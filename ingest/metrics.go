package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are ingest's Prometheus series. Counting end to end (received,
// committed, rejected, duplicates, acked) makes a loss anywhere visible:
// in steady state received == acked, and committed + rejected + duplicates
// == observations decoded.
type Metrics struct {
	Received      *prometheus.CounterVec // messages from the broker, by kind
	receivedBy    map[Kind]prometheus.Counter
	Committed     prometheus.Counter     // observations durably stored
	Duplicates    prometheus.Counter     // observations already stored (redelivery)
	Rejected      *prometheus.CounterVec // rejections, by reason
	Acked         prometheus.Counter     // messages acknowledged to the broker
	BatchSize     prometheus.Histogram
	CommitSeconds prometheus.Histogram
	CommitLag     prometheus.Histogram // commit time minus observation ts
	BufferDepth   prometheus.Gauge     // messages received, not yet acknowledged
	WriteErrors   *prometheus.CounterVec
	Connected     prometheus.Gauge
	Reconnects    prometheus.Counter
	BrokerSys     *prometheus.GaugeVec
	WriteFailing  prometheus.Gauge     // 1 while batch writes fail (Healthy)
	Subscribed    prometheus.Gauge     // 1 while the telemetry subscription is granted
	SubscribeErrs prometheus.Counter   // refused or timed-out subscriptions
	HeldBytes     prometheus.GaugeFunc // payload bytes received and not yet acknowledged
	DeviceStates  prometheus.Gauge     // devices whose state ingest keeps in memory
	RejectsPruned prometheus.Counter
	// The emergency connection (see Subscriber) and the telemetry copies
	// of emergency signals, by outcome: acknowledged (their twin from the
	// emergency connection committed) or written (it did not come in time).
	EmergencyConnected     prometheus.Gauge
	EmergencySubscribed    prometheus.Gauge
	EmergencyConnects      prometheus.Counter
	EmergencySubscribeErrs prometheus.Counter
	Twins                  *prometheus.CounterVec
	// Retention (partition maintenance, hourly): passes by result, the
	// last good pass, the cutoff it applied and the partitions it dropped.
	RetentionRuns     *prometheus.CounterVec
	RetentionLastRun  prometheus.Gauge
	RetentionCutoff   prometheus.Gauge
	PartitionsDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, heldBytes func() float64) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ingest_received_total",
			Help: "MQTT messages received, by topic kind."}, []string{"kind"}),
		Committed: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ingest_committed_total",
			Help: "Observations committed to PostgreSQL."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ingest_duplicates_total",
			Help: "Observations found already stored (broker redelivery); not stored twice."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ingest_rejected_total",
			Help: "Rejected messages or batch elements, by reason."}, []string{"reason"}),
		Acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ingest_acked_total",
			Help: "Messages acknowledged to the broker after their commit."}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ioc_ingest_batch_size",
			Help: "Observations and rejections per database write.", Buckets: prometheus.ExponentialBuckets(1, 2, 15)}),
		CommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ioc_ingest_commit_duration_seconds",
			Help: "Time to write and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		CommitLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ioc_ingest_commit_lag_seconds",
			Help:    "Commit time minus the observation's ts.",
			Buckets: []float64{.001, .002, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2, 5, 10, 30, 60, 300}}),
		BufferDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ingest_buffer_depth",
			Help: "Messages received and not yet acknowledged."}),
		WriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ingest_write_errors_total",
			Help: "Failed batch writes: transient (database away or busy; retried), server_fault (e.g. missing permission, table or column; retried, /readyz red), poison (split and isolated), panic (kept as internal_error rejections) or hook (the in-transaction hook failed; written without it)."}, []string{"class"}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_mqtt_connected",
			Help: "1 while connected to the broker."}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_mqtt_connects_total",
			Help: "Successful connections to the broker."}),
		BrokerSys: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ioc_broker_sys",
			Help: "Counters the broker publishes under $SYS (Mosquitto), e.g. publish/messages/dropped."}, []string{"topic"}),
	}
	m.WriteFailing = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ingest_write_failing",
		Help: "1 while batch writes fail and none has succeeded since (see /readyz)."})
	m.Subscribed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_mqtt_subscribed",
		Help: "1 while the broker has granted the telemetry subscription."})
	m.SubscribeErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_mqtt_subscribe_errors_total",
		Help: "Telemetry subscriptions refused by the broker or timed out (retried with backoff)."})
	m.HeldBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ioc_ingest_held_bytes",
		Help: "Payload bytes received from the broker and not yet acknowledged."}, heldBytes)
	m.DeviceStates = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ingest_device_states",
		Help: "Devices whose registry state ingest keeps in memory."})
	m.RejectsPruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ingest_rejects_pruned_total",
		Help: "Rows deleted from ingest_rejects by the age and count limits."})
	m.RetentionRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_retention_runs_total",
		Help: "Partition maintenance passes (create ahead, drop past retention_days), by result (ok, error)."}, []string{"result"})
	m.RetentionLastRun = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_retention_last_run_timestamp_seconds",
		Help: "Unix time of the last successful partition maintenance pass."})
	m.RetentionCutoff = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_retention_cutoff_timestamp_seconds",
		Help: "Telemetry before this Unix time is dropped (now - retention_days)."})
	m.PartitionsDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_retention_partitions_dropped_total",
		Help: "Daily telemetry partitions dropped past retention_days."})
	m.EmergencyConnected = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_mqtt_emergency_connected",
		Help: "1 while the emergency connection (<prefix>/emergency/# only) is connected."})
	m.EmergencySubscribed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_mqtt_emergency_subscribed",
		Help: "1 while the broker has granted the emergency connection's subscription."})
	m.EmergencyConnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_mqtt_emergency_connects_total",
		Help: "Successful connections of the emergency connection."})
	m.EmergencySubscribeErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_mqtt_emergency_subscribe_errors_total",
		Help: "Emergency subscriptions refused by the broker or timed out (retried with backoff)."})
	m.Twins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ingest_emergency_twins_total",
		Help: "Telemetry-connection copies of emergency signals: acknowledged (the emergency connection's copy committed) or written (it did not come within 1 s)."}, []string{"outcome"})
	// Resolved once: WithLabelValues hashes its labels on every call.
	m.receivedBy = map[Kind]prometheus.Counter{}
	for _, k := range []Kind{KindTraffic, KindCamera, KindEmergency, KindUnit, KindStatus, "invalid"} {
		m.receivedBy[k] = m.Received.WithLabelValues(string(k))
	}
	reg.MustRegister(m.Received, m.Committed, m.Duplicates, m.Rejected, m.Acked, m.BatchSize, m.CommitSeconds,
		m.CommitLag, m.BufferDepth, m.WriteErrors, m.Connected, m.Reconnects, m.BrokerSys,
		m.WriteFailing, m.Subscribed, m.SubscribeErrs, m.HeldBytes, m.DeviceStates, m.RejectsPruned,
		m.RetentionRuns, m.RetentionLastRun, m.RetentionCutoff, m.PartitionsDropped,
		m.EmergencyConnected, m.EmergencySubscribed, m.EmergencyConnects, m.EmergencySubscribeErrs, m.Twins)
	return m
}
