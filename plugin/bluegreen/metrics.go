package bluegreen

import (
	"sync"
	"sync/atomic"

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

// answerCounters caches a switch's answersTotal counters per server, so
// the query path does not hash label values: a map lookup, no allocation.
// The map is replaced, never changed, when a server is first seen.
type answerCounters struct {
	sw    string
	pools []string

	mu sync.Mutex
	m  atomic.Pointer[map[string]*serverCounters]
}

// serverCounters are one server's counters: one per pool and one for base.
type serverCounters struct {
	pools []prometheus.Counter
	base  prometheus.Counter
}

func newAnswerCounters(cfg *config) *answerCounters {
	return &answerCounters{sw: cfg.name, pools: cfg.poolNames()}
}

// get returns server's counters.
func (a *answerCounters) get(server string) *serverCounters {
	if m := a.m.Load(); m != nil {
		if c, ok := (*m)[server]; ok {
			return c
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.m.Load()
	if old != nil {
		if c, ok := (*old)[server]; ok {
			return c
		}
	}
	c := &serverCounters{base: answersTotal.WithLabelValues(server, a.sw, baseLabel)}
	for _, p := range a.pools {
		c.pools = append(c.pools, answersTotal.WithLabelValues(server, a.sw, p))
	}
	m := map[string]*serverCounters{server: c}
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	a.m.Store(&m)
	return c
}
