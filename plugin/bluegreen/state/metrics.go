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
