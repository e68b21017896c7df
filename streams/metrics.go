package streams

import "github.com/prometheus/client_golang/prometheus"

var (
	metricConnections     = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ws_connections", Help: "Open websocket connections."})
	metricConnects        = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_connects_total", Help: "Websocket connections accepted."})
	metricSubscriptions   = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ioc_ws_subscriptions", Help: "Connections subscribed to each layer."}, []string{"layer"})
	metricSubscribes      = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_subscribes_total", Help: "Subscribe messages served."})
	metricQueueBytes      = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ws_queue_bytes", Help: "Bytes waiting in the connections' queues."})
	metricCoalesced       = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_coalesced_total", Help: "Device and unit updates replaced by a newer one before they were sent."})
	metricDelivered       = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_delivered_total", Help: "Frames written to websockets."})
	metricIncidentEvents  = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_incident_events_total", Help: "Incident events handed to the connections."})
	metricSlowConsumers   = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_slow_consumer_closes_total", Help: "Connections closed because their queue overflowed."})
	metricSessionEnded    = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_session_ended_closes_total", Help: "Connections closed because their session ended or their user changed."})
	metricResumes         = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_resumes_total", Help: "Resumes served with exactly the missed events."})
	metricResets          = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_resets_total", Help: "Resumes answered with a reset and a snapshot."}, []string{"reason"})
	metricBadMessages     = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_bad_messages_total", Help: "Client messages refused."})
	metricSourceOutages   = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_source_outages_total", Help: "Times an event source (incidents, fanout) was lost."}, []string{"source"})
	metricSourceUp        = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ioc_ws_source_up", Help: "1 while the event source delivers."}, []string{"source"})
	metricSnapshotsShared = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_snapshots_shared_total", Help: "Snapshots whose incidents were read and encoded once for several views with the same filter."})
	metricFanoutErrors    = prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_fanout_publish_errors_total", Help: "Update batches that could not be published to the other instances."})
)

// Collectors returns the gateway's metrics, to register once.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{metricConnections, metricConnects, metricSubscriptions, metricSubscribes, metricQueueBytes,
		metricCoalesced, metricDelivered, metricIncidentEvents, metricSlowConsumers, metricSessionEnded, metricResumes,
		metricResets, metricBadMessages, metricSourceOutages, metricSourceUp, metricFanoutErrors, metricSnapshotsShared}
}
