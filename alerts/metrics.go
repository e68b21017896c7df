package alerts

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	metricQueueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ioc_alerts_queue_depth", Help: "Observation batches waiting for the alert engine.",
	})
	metricDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_dropped_total", Help: "Observations not evaluated live: committed while the engine was stopping, or refused by Redis on the way to the leader (recovered by the replay at the next start or leader change).",
	})
	metricQueueFull = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_queue_full_total", Help: "Committed batches that found the engine's queue full and held their ingest writer until there was room (backpressure).",
	})
	metricQueueWait = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_queue_wait_seconds_total", Help: "Time ingest writers spent waiting for room in the engine's queue.",
	})
	metricPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_panics_total", Help: "Panics recovered, by where (evaluate, apply, intx, maintain); each is logged with its stack.",
	}, []string{"op"})
	metricObserved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_observations_total", Help: "Observations evaluated.",
	})
	metricTriggers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_triggers_total", Help: "Rule conclusions, by rule.",
	}, []string{"rule"})
	metricOpened = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_incidents_opened_total", Help: "Incidents opened, by kind.",
	}, []string{"kind"})
	metricJoined = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_incidents_joined_total", Help: "Evidence that joined an open incident, by the evidence's kind.",
	}, []string{"kind"})
	metricReplayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_replayed_total", Help: "Triggers whose evidence was already recorded (replay, redelivery).",
	})
	metricAutoResolved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_auto_resolved_total", Help: "Incidents resolved because their conditions cleared.",
	})
	metricEscalated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_escalated_total", Help: "Escalations of unacknowledged incidents.",
	})
	metricEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_events_total", Help: "Incident events committed.",
	})
	metricWriteErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_errors_total", Help: "Failures of the engine's database work, each retried or logged.",
	}, []string{"op"})
	metricNotify = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ioc_alerts_notifications_total", Help: "Webhook deliveries by result (sent, retry, dead).",
	}, []string{"result"})
	metricSubscriberDrops = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ioc_alerts_event_subscribers_dropped_total", Help: "Event subscribers disconnected for being too slow.",
	})
)

// RegisterMetrics registers the package's metrics with reg (again is fine).
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{metricQueueDepth, metricDropped, metricQueueFull, metricQueueWait, metricPanics, metricObserved, metricTriggers,
		metricOpened, metricJoined, metricReplayed, metricAutoResolved, metricEscalated, metricEvents,
		metricWriteErrors, metricNotify, metricSubscriberDrops} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return fmt.Errorf("alerts metrics: %w", err)
			}
		}
	}
	return nil
}
