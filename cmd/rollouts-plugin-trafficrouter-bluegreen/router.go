package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
)

// Router implements Argo's rpc.TrafficRouterPlugin on a bluegreen switch:
// the canary's weight d becomes the weights {stablePool: 100-d,
// canaryPool: d}, every other pool 0.
type Router struct {
	now func() time.Time // the clock VerifyWeight compares effective_at with

	mu      sync.Mutex
	clients map[string]*adminClient // by the config's raw JSON
}

// NewRouter returns a Router on the system clock.
func NewRouter() *Router {
	return &Router{now: time.Now, clients: map[string]*adminClient{}}
}

// maxClients bounds the client cache; every Rollout with its own config
// has one entry.
const maxClients = 256

// client returns the admin API client for ro's plugin config.
func (r *Router) client(ro *v1alpha1.Rollout) (*adminClient, error) {
	if ro == nil || ro.Spec.Strategy.Canary == nil || ro.Spec.Strategy.Canary.TrafficRouting == nil {
		return nil, fmt.Errorf("rollout %s: no canary strategy with trafficRouting", rolloutName(ro))
	}
	raw := ro.Spec.Strategy.Canary.TrafficRouting.Plugins[PluginName]
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.clients[string(raw)]; ok {
		return a, nil
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("rollout %s: trafficRouting.plugins.%q: %w", rolloutName(ro), PluginName, err)
	}
	a, err := newAdminClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("rollout %s: trafficRouting.plugins.%q: %w", rolloutName(ro), PluginName, err)
	}
	if len(r.clients) >= maxClients {
		clear(r.clients)
	}
	r.clients[string(raw)] = a
	return a, nil
}

func rolloutName(ro *v1alpha1.Rollout) string {
	if ro == nil {
		return "(none)"
	}
	return ro.Namespace + "/" + ro.Name
}

// rpcError turns err into the plugin protocol's error.
func rpcError(err error) types.RpcError {
	if err == nil {
		return types.RpcError{}
	}
	return types.RpcError{ErrorString: PluginName + ": " + err.Error()}
}

// InitPlugin has nothing to set up: every call reads its Rollout's config.
func (r *Router) InitPlugin() types.RpcError { return types.RpcError{} }

// Type names the plugin.
func (r *Router) Type() string { return PluginName }

// UpdateHash is a no-op: the pools' records name the stable and canary
// Services, whose selectors Argo updates itself.
func (r *Router) UpdateHash(*v1alpha1.Rollout, string, string, []v1alpha1.WeightDestination) types.RpcError {
	return types.RpcError{}
}

// SetWeight gives the canary pool desiredWeight percent of the switch.
func (r *Router) SetWeight(ro *v1alpha1.Rollout, desiredWeight int32, additional []v1alpha1.WeightDestination) types.RpcError {
	if err := checkWeight(desiredWeight, additional); err != nil {
		return rpcError(err)
	}
	return rpcError(r.setWeight(ro, desiredWeight))
}

// RemoveManagedRoutes sends every client back to the stable pool.
func (r *Router) RemoveManagedRoutes(ro *v1alpha1.Rollout) types.RpcError {
	return rpcError(r.setWeight(ro, 0))
}

// VerifyWeight is Verified once the switch holds the weights SetWeight
// writes for desiredWeight and its effective_at has passed: the answers
// resolvers cached under the previous weights have expired by then.
func (r *Router) VerifyWeight(ro *v1alpha1.Rollout, desiredWeight int32, additional []v1alpha1.WeightDestination) (types.RpcVerified, types.RpcError) {
	if err := checkWeight(desiredWeight, additional); err != nil {
		return types.NotVerified, rpcError(err)
	}
	a, err := r.client(ro)
	if err != nil {
		return types.NotVerified, rpcError(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.timeout())
	defer cancel()
	s, err := a.get(ctx)
	if err != nil {
		return types.NotVerified, rpcError(a.explain(err))
	}
	want, err := a.weightsFor(s, desiredWeight)
	if err != nil {
		return types.NotVerified, rpcError(err)
	}
	if !maps.Equal(s.Weights, want) || r.now().Before(s.EffectiveAt) {
		return types.NotVerified, types.RpcError{}
	}
	return types.Verified, types.RpcError{}
}

// SetHeaderRoute: a DNS query carries no HTTP headers. Argo clears a
// managed route with an empty match, which succeeds.
func (r *Router) SetHeaderRoute(_ *v1alpha1.Rollout, h *v1alpha1.SetHeaderRoute) types.RpcError {
	if h != nil && len(h.Match) > 0 {
		return rpcError(fmt.Errorf("setHeaderRoute %q: header-based routing is not supported by DNS (a query carries no HTTP headers); use setWeight steps", h.Name))
	}
	return types.RpcError{}
}

// SetMirrorRoute: a DNS answer sends a client to one place, so traffic
// cannot be mirrored. An empty match (Argo clearing the route) succeeds.
func (r *Router) SetMirrorRoute(_ *v1alpha1.Rollout, m *v1alpha1.SetMirrorRoute) types.RpcError {
	if m != nil && len(m.Match) > 0 {
		return rpcError(fmt.Errorf("setMirrorRoute %q: traffic mirroring is not supported by DNS (an answer sends a client to one pool); use setWeight steps", m.Name))
	}
	return types.RpcError{}
}

func checkWeight(d int32, additional []v1alpha1.WeightDestination) error {
	if d < 0 || d > 100 {
		return fmt.Errorf("weight %d: want 0 to 100", d)
	}
	if len(additional) > 0 {
		return fmt.Errorf("%d additional destinations (an experiment's weighted services): not supported by DNS; a switch routes between stablePool and canaryPool only", len(additional))
	}
	return nil
}

// setWeight writes the weights for d unless the switch holds them already.
// The write carries If-Match; on 412 (someone changed the switch between
// the read and the write) it reads and tries once more.
func (r *Router) setWeight(ro *v1alpha1.Rollout, d int32) error {
	a, err := r.client(ro)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*a.cfg.timeout())
	defer cancel()
	reason := fmt.Sprintf("argo-rollouts %s: canary weight %d%%", rolloutName(ro), d)
	for attempt := 1; ; attempt++ {
		s, err := a.get(ctx)
		if err != nil {
			return a.explain(err)
		}
		want, err := a.weightsFor(s, d)
		if err != nil {
			return err
		}
		if maps.Equal(s.Weights, want) {
			return nil
		}
		_, err = a.putWeights(ctx, s.Version, want, reason)
		if isStatus(err, http.StatusPreconditionFailed) && attempt == 1 {
			continue
		}
		if isStatus(err, http.StatusPreconditionFailed) {
			return fmt.Errorf("switch %s changed under two writes in a row (412 twice); the next reconcile tries again", a.cfg.Switch)
		}
		return a.explain(err)
	}
}

// weightsFor is the weights map for canary weight d: every pool of the
// switch named, stable 100-d, canary d, the others 0.
func (a *adminClient) weightsFor(s *switchState, d int32) (map[string]uint64, error) {
	pools := slices.Sorted(maps.Keys(s.Weights))
	for _, p := range []struct{ field, name string }{{"stablePool", a.cfg.StablePool}, {"canaryPool", a.cfg.CanaryPool}} {
		if _, ok := s.Weights[p.name]; !ok {
			return nil, fmt.Errorf("%s %q: switch %s has no such pool (it has %v)", p.field, p.name, a.cfg.Switch, pools)
		}
	}
	w := make(map[string]uint64, len(s.Weights))
	for p := range s.Weights {
		w[p] = 0
	}
	w[a.cfg.StablePool] = uint64(100 - d)
	w[a.cfg.CanaryPool] = uint64(d)
	return w, nil
}

// explain adds what an admin API error means for the plugin's user.
func (a *adminClient) explain(err error) error {
	switch {
	case err == nil:
		return nil
	case isStatus(err, http.StatusConflict):
		return fmt.Errorf("switch %s: a bluegreen rollout is running on it, and Argo Rollouts cannot move its weights meanwhile: abort it (DELETE %s/rollout) or let it finish (%w)", a.cfg.Switch, a.base, err)
	case isStatus(err, http.StatusUnauthorized):
		return fmt.Errorf("admin API %s refused the token (check tokenFile against the server's token): %w", a.cfg.AdminURL, err)
	case isStatus(err, http.StatusForbidden):
		return fmt.Errorf("admin API %s refused the request (the server's admin block must list this Host under hosts): %w", a.cfg.AdminURL, err)
	case isStatus(err, http.StatusNotFound):
		return fmt.Errorf("switch %q: not found at %s (%w)", a.cfg.Switch, a.cfg.AdminURL, err)
	}
	return err
}
