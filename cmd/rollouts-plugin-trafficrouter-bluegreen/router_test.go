package main

import (
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	"github.com/stretchr/testify/require"
)

// VerifyWeight's boundary, on an injected clock: not verified 1 ns before
// the effective_at the API reports, verified at it; and never while the
// switch holds other weights, whatever the time.
func TestVerifyWeightAtEffectiveAt(t *testing.T) {
	s := startServer(t)
	ro := rollout(t, s, nil)
	r := NewRouter()
	require.False(t, r.SetWeight(ro, 25, nil).HasError())
	st := s.state(t)
	require.Equal(t, weights(75, 25), st.Weights)

	for _, tc := range []struct {
		now  time.Time
		d    int32
		want types.RpcVerified
	}{
		{st.EffectiveAt.Add(-time.Nanosecond), 25, types.NotVerified},
		{st.EffectiveAt, 25, types.Verified},
		{st.EffectiveAt.Add(time.Hour), 25, types.Verified},
		{st.EffectiveAt.Add(time.Hour), 26, types.NotVerified},
		{st.EffectiveAt.Add(time.Hour), 0, types.NotVerified},
	} {
		r.now = func() time.Time { return tc.now }
		got, err := r.VerifyWeight(ro, tc.d, nil)
		require.False(t, err.HasError(), "%s", err)
		require.Equal(t, tc.want, got, "VerifyWeight(%d) at effective_at%+v", tc.d, tc.now.Sub(st.EffectiveAt))
	}
	_, err := r.VerifyWeight(ro, 101, nil)
	require.ErrorContains(t, err, "weight 101: want 0 to 100")
	require.ErrorContains(t, r.SetWeight(ro, -1, nil), "weight -1: want 0 to 100")
	require.Equal(t, st.Version, s.state(t).Version)
}
