package bluegreen

import (
	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// answersTotal counts answers by the pool they came from ("_base" for
	// names no pool holds).
	answersTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "answers_total",
		Help:      "Counter of answers by switch and the pool they were answered from.",
	}, []string{"server", "switch", "pool"})
	// zoneReloads counts zone file reloads by result.
	zoneReloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "bluegreen",
		Name:      "zone_reloads_total",
		Help:      "Counter of zone file reloads by switch, pool and result (success or error).",
	}, []string{"switch", "pool", "result"})
)
