package state

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRolloutPausedGauge: coredns_bluegreen_rollout_paused follows pause,
// resume and abort, for the alert on a rollout paused too long.
func TestRolloutPausedGauge(t *testing.T) {
	s, _ := newRolloutSwitch(t, "rollout-paused-gauge", nil)
	ctx := context.Background()
	paused := func() float64 { return testutil.ToFloat64(rolloutPaused.WithLabelValues(s.Name)) }
	assert.Equal(t, 0.0, paused(), "no rollout")

	_, err := s.StartRollout(ctx, RolloutRequest{Steps: steps(time.Hour, time.Hour)}, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 0.0, paused(), "running")
	_, err = s.PauseRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 1.0, paused(), "paused")
	_, err = s.ResumeRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 0.0, paused(), "resumed")
	_, err = s.PauseRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 1.0, paused(), "paused again")
	_, err = s.AbortRollout(ctx, Update{Source: SourceAPI})
	require.NoError(t, err)
	assert.Equal(t, 0.0, paused(), "aborted while paused")
}
