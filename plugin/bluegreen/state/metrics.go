package state

import (
	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// weightGauge is each pool's configured weight.
	weightGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "weight",
		Help:      "Configured weight of each pool.",
	}, []string{"switch", "pool"})
	// shareGauge is each pool's share of clients under the effective weights.
	shareGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "share",
		Help:      "Share of clients (0 to 1) each pool gets under the effective weights.",
	}, []string{"switch", "pool"})
	// changesTotal counts committed weight changes by source.
	changesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "changes_total",
		Help:      "Counter of committed weight changes by switch and source (api, rollout, health).",
	}, []string{"switch", "source"})
	// storeErrors counts failed store operations.
	storeErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "store_errors_total",
		Help:      "Counter of store operations that failed, by switch.",
	}, []string{"switch"})
)

var (
	// poolHealthy is 1 for a healthy pool, 0 for an unhealthy one.
	poolHealthy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "pool_healthy",
		Help:      "1 when the pool's health checks pass (or it has none), 0 when it is unhealthy.",
	}, []string{"switch", "pool"})
	// failOpenGauge is 1 while every weighted pool is unhealthy.
	failOpenGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "fail_open",
		Help:      "1 while every pool with a weight above 0 is unhealthy and the configured weights apply (fail open).",
	}, []string{"switch"})
	// failOpenTotal counts the times a switch failed open.
	failOpenTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "fail_open_total",
		Help:      "Counter of the times every weighted pool became unhealthy and the switch failed open.",
	}, []string{"switch"})
)

// storeStale is 1 while a shared store (etcd) does not answer.
var storeStale = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: plugin.Namespace,
	Subsystem: "bluegreen",
	Name:      "store_stale",
	Help:      "1 while the switch's shared store does not answer and the weights served may be out of date.",
}, []string{"switch"})

// rolloutPaused is 1 while the switch's rollout is paused.
var rolloutPaused = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: plugin.Namespace,
	Subsystem: "bluegreen",
	Name:      "rollout_paused",
	Help:      "1 while the switch's rollout is paused, else 0.",
}, []string{"switch"})

// measurementsTotal counts analysis measurements by check and result; each
// is counted by the replica that recorded it.
var measurementsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: plugin.Namespace,
	Subsystem: "bluegreen",
	Name:      "analysis_measurements_total",
	Help:      "Counter of rollout analysis measurements recorded, by switch, check and result (pass, fail, inconclusive).",
}, []string{"switch", "check", "result"})
