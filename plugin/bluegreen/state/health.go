package state

import (
	"context"
	"fmt"
	"maps"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// ProbedPools declares which pools have health checks. Pools without one
// are healthy; a newly probed pool starts healthy.
func (s *Switch) ProbedPools(pools []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]bool{}
	for _, p := range pools {
		keep[p] = true
		if _, ok := s.health[p]; !ok {
			s.health[p] = Health{Healthy: true, Since: s.clock.Now().UTC()}
		}
	}
	for p := range s.health {
		if !keep[p] {
			delete(s.health, p)
		}
	}
	for _, p := range s.pools {
		poolHealthy.WithLabelValues(s.Name, p).Set(boolFloat(s.healthyLocked(p)))
	}
	s.publishLocked(s.clock.Now())
}

// Healthy reports whether pool is healthy now.
func (s *Switch) Healthy(pool string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthyLocked(pool)
}

func (s *Switch) healthyLocked(pool string) bool {
	h, ok := s.health[pool]
	return !ok || h.Healthy
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SetHealth records a pool's health transition: the effective weights
// change at once, the transition goes into the history (source health),
// and with abort_on_unhealthy a rollout using the pool is aborted.
func (s *Switch) SetHealth(ctx context.Context, pool string, healthy bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.health[pool]
	if !ok || h.Healthy == healthy {
		return
	}
	now := s.clock.Now().UTC()
	s.health[pool] = Health{Healthy: healthy, Since: now, Detail: detail}
	poolHealthy.WithLabelValues(s.Name, pool).Set(boolFloat(healthy))
	state := "healthy"
	if !healthy {
		state = "unhealthy"
	}
	reason := fmt.Sprintf("pool %s %s", pool, state)
	if detail != "" {
		reason += ": " + detail
	}
	log.Infof("Switch %s: %s", s.Name, reason)

	// With a shared store another replica may write first (and abort the
	// rollout already): on a conflict take its record and decide again, so
	// the abort is written once.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		cur, _ := s.configuredLocked(now)
		rec := s.recordLocked(now)
		why := reason
		if p := s.runningLocked(); p != nil && !healthy && p.AbortOnUnhealthy && inPlan(p, pool) && !(p.PausedAt == nil && p.At(now).Done) {
			s.abortRecord(rec, reason, now)
			why = "rollout aborted: " + reason
			log.Warningf("Switch %s: %s", s.Name, why)
		} else if finishDue(rec, now) {
			why += "; rollout completed"
		}
		err = s.commitLocked(ctx, rec, store.Change{
			Time: now, Source: SourceHealth, From: weightsMap(s.pools, cur), To: maps.Clone(rec.Weights), Reason: why,
		})
		if err != ErrVersion {
			break
		}
		r, lerr := s.st.Load(ctx, s.Name)
		if lerr != nil || r == nil {
			break
		}
		s.rec = settle(r)
	}
	if err != nil {
		log.Errorf("Switch %s: recording health change failed: %v", s.Name, err)
	}
	s.publishLocked(now)
}

// inPlan reports whether pool has a weight above 0 in any step.
func inPlan(p *rolloutPlan, pool string) bool {
	for _, st := range p.Steps {
		if st.Weights[pool] > 0 {
			return true
		}
	}
	return false
}
