package admin

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/state"
)

// The status page's chart of answers per pool: one sample every
// sampleInterval, kept for sampleWindow, in memory only.
const (
	sampleInterval = 5 * time.Second
	sampleWindow   = 15 * time.Minute
	maxSamples     = int(sampleWindow/sampleInterval) + 1
	answersMetric  = "coredns_bluegreen_answers_total"
)

// gatherFunc reads metric families, as prometheus.Gatherer.Gather does.
type gatherFunc func() ([]*dto.MetricFamily, error)

// Sample is the number of answers each pool gave between the previous
// sample and At.
type Sample struct {
	At     time.Time         `json:"at"`
	Counts map[string]uint64 `json:"counts"`
}

// series is one switch's samples and the counter totals last read.
type series struct {
	last    map[string]float64
	lastAt  time.Time
	samples []Sample // oldest first, at most maxSamples
}

// sampler keeps the recent answers per pool of every switch, read from the
// process's own answers_total counters. It is process-wide, so the chart
// survives a Corefile reload that replaces the admin servers.
type sampler struct {
	gather gatherFunc

	mu     sync.Mutex
	series map[string]*series // by switch
}

var answers = &sampler{gather: prometheus.DefaultGatherer.Gather, series: map[string]*series{}}

// totals returns answers_total summed over servers, by switch and pool.
func (sm *sampler) totals() map[string]map[string]float64 {
	mfs, err := sm.gather()
	if err != nil && len(mfs) == 0 {
		return nil
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != answersMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var sw, pool string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "switch":
					sw = l.GetValue()
				case "pool":
					pool = l.GetValue()
				}
			}
			if out[sw] == nil {
				out[sw] = map[string]float64{}
			}
			out[sw][pool] += m.GetCounter().GetValue()
		}
	}
	return out
}

// sample records, at now, the answers each pool of sws gave since the last
// sample, and forgets switches not sampled for a whole window.
func (sm *sampler) sample(now time.Time, sws []*state.Switch) {
	totals := sm.totals()
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for _, sw := range sws {
		se := sm.series[sw.Name]
		if se == nil {
			se = &series{}
			sm.series[sw.Name] = se
		}
		// Two servers overlap for a moment during a reload: one sample
		// per interval is enough.
		if !se.lastAt.IsZero() && now.Sub(se.lastAt) < sampleInterval/2 {
			continue
		}
		cur := map[string]float64{}
		for _, p := range sw.Load().Pools {
			cur[p] = totals[sw.Name][p]
		}
		if se.last != nil {
			s := Sample{At: now.UTC(), Counts: map[string]uint64{}}
			for p, v := range cur {
				d := v - se.last[p]
				if d < 0 { // the counter started again
					d = v
				}
				s.Counts[p] = uint64(d)
			}
			se.samples = append(se.samples, s)
		}
		se.last, se.lastAt = cur, now
		drop := 0
		for drop < len(se.samples) && (len(se.samples)-drop > maxSamples || now.Sub(se.samples[drop].At) > sampleWindow) {
			drop++
		}
		if drop > 0 {
			se.samples = append(se.samples[:0], se.samples[drop:]...)
		}
	}
	for name, se := range sm.series {
		if now.Sub(se.lastAt) > sampleWindow {
			delete(sm.series, name)
		}
	}
}

// samples returns a copy of switch name's samples, oldest first.
func (sm *sampler) samples(name string) []Sample {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	se := sm.series[name]
	if se == nil {
		return []Sample{}
	}
	return append([]Sample{}, se.samples...)
}

// startSampler samples the server's switches every sampleInterval until
// stopSampler; the first sample is taken at once. Starting a running
// sampler does nothing.
func (s *Server) startSampler() {
	if s.stopSample != nil {
		return
	}
	stop := make(chan struct{})
	s.stopSample = stop
	go func() {
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		answers.sample(time.Now(), s.switchList())
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				answers.sample(now, s.switchList())
			}
		}
	}()
}

func (s *Server) stopSampler() {
	if s.stopSample != nil {
		close(s.stopSample)
		s.stopSample = nil
	}
}
