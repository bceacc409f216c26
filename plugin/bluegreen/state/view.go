package state

import (
	"time"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/store"
)

// View is a switch's state as the admin API shows it (SPEC §4).
type View struct {
	Name        string             `json:"name"`
	Version     uint64             `json:"version"`
	Weights     map[string]uint64  `json:"weights"`
	Shares      map[string]float64 `json:"shares"`
	Pools       []PoolView         `json:"pools"`
	TTL         TTLView            `json:"ttl"`
	Sticky      string             `json:"sticky"`
	UpdatedAt   time.Time          `json:"updated_at"`
	EffectiveAt time.Time          `json:"effective_at"`
	Rollout     any                `json:"rollout"`
	Store       string             `json:"store"`
}

// PoolView is one pool in a View.
type PoolView struct {
	Name            string `json:"name"`
	Weight          uint64 `json:"weight"`
	EffectiveWeight uint64 `json:"effective_weight"`
	Healthy         bool   `json:"healthy"`
}

// TTLView is the ttl option in a View.
type TTLView struct {
	Max uint32 `json:"max"`
	Min uint32 `json:"min"`
}

// View returns the switch's current state.
func (s *Switch) View() *View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewLocked()
}

func (s *Switch) viewLocked() *View {
	snap := s.snap.Load()
	v := &View{
		Name:      s.Name,
		Version:   snap.Version,
		Weights:   weightsMap(snap.Pools, snap.Weights),
		Shares:    map[string]float64{},
		TTL:       TTLView{Max: s.info.TTLMax, Min: s.info.TTLMin},
		Sticky:    s.info.Sticky,
		UpdatedAt: snap.UpdatedAt,
		Store:     s.st.Kind(),
	}
	for i, p := range snap.Pools {
		v.Shares[p] = snap.Share(i)
		v.Pools = append(v.Pools, PoolView{Name: p, Weight: snap.Weights[i], EffectiveWeight: snap.Effective[i], Healthy: true})
	}
	v.EffectiveAt = s.effectiveAt
	if v.EffectiveAt.Before(v.UpdatedAt) {
		v.EffectiveAt = v.UpdatedAt
	}
	return v
}

// History returns the audit log, newest first.
func (s *Switch) History() []store.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return []store.Change{}
	}
	h := s.rec.Clone().History
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}
