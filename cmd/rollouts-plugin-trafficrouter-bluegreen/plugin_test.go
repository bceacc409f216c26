package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/rollout/trafficrouting/plugin/client"
	"github.com/argoproj/argo-rollouts/rollout/trafficrouting/plugin/rpc"
	"github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	argoplugin "github.com/argoproj/argo-rollouts/utils/plugin"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rollouts-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	if moduleDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	goplugin.CleanupClients() // the plugin processes Argo's client started
	os.RemoveAll(dir)
	os.Exit(code)
}

// kube serves the manifests' argo-rollouts-config ConfigMap to Argo's
// config package, the one call the controller's plugin start-up makes.
type kube struct {
	kubernetes.Interface
	cm *corev1.ConfigMap
}

func (k kube) CoreV1() corev1client.CoreV1Interface { return coreV1{cm: k.cm} }

// coreV1's embedded interface is nil: a call the controller's start-up
// does not make panics the test instead of passing unnoticed.
type coreV1 struct {
	corev1client.CoreV1Interface
	cm *corev1.ConfigMap
}

func (c coreV1) ConfigMaps(ns string) corev1client.ConfigMapInterface {
	return configMaps{ns: ns, cm: c.cm}
}

type configMaps struct {
	corev1client.ConfigMapInterface
	ns string
	cm *corev1.ConfigMap
}

func (c configMaps) Get(_ context.Context, name string, _ metav1.GetOptions) (*corev1.ConfigMap, error) {
	if c.ns != c.cm.Namespace || name != c.cm.Name {
		return nil, apierrors.NewNotFound(corev1.Resource("configmaps"), name)
	}
	return c.cm.DeepCopy(), nil
}

var (
	startOnce sync.Once
	startErr  error
	kubeOnce  kube
)

// startPlugin does what the Argo Rollouts controller does at start-up with
// the manifests' argo-rollouts-config: the init container's -install into
// a stand-in for the /plugins emptyDir, Argo's InitializeConfig and
// DownloadPlugins (the file:// copy into its plugin folder); NewReconciler
// then starts the binary through Argo's go-plugin client (its handshake
// and plugin map), which calls InitPlugin.
func startPlugin(t *testing.T) {
	t.Helper()
	bin := pluginBinary(t)
	startOnce.Do(func() {
		m := loadManifests(t)
		cm := m.configMap(t, "argo-rollouts", defaults.DefaultRolloutsConfigMapName)
		installDir := filepath.Join(buildDir, "plugins")
		if startErr = os.MkdirAll(installDir, 0o755); startErr != nil {
			return
		}
		// The init container's args, with its mount path moved here.
		init := m.controllerPatch(t).Spec.Template.Spec.InitContainers[0]
		require.Equal(t, []string{"-install", "/plugins"}, init.Args)
		out, err := runCmd(bin, "-install", installDir)
		if startErr = err; err != nil {
			startErr = fmt.Errorf("%s -install: %v: %s", bin, err, out)
			return
		}
		cm = cm.DeepCopy()
		cm.Data["trafficRouterPlugins"] = strings.ReplaceAll(cm.Data["trafficRouterPlugins"], "file:///plugins/", "file://"+installDir+"/")
		kubeOnce = kube{cm: cm}
		os.Setenv("POD_NAMESPACE", cm.Namespace) // where Argo looks for its ConfigMap
		// Argo's plugin-bin is relative to the working directory, where a
		// restart after a failed ping looks for the binary again: the
		// process stays there, as the controller's does.
		ctl := filepath.Join(buildDir, "controller")
		os.MkdirAll(ctl, 0o755)
		if startErr = os.Chdir(ctl); startErr != nil {
			return
		}
		if _, startErr = config.InitializeConfig(kubeOnce, defaults.DefaultRolloutsConfigMapName); startErr != nil {
			return
		}
		if startErr = argoplugin.DownloadPlugins(argoplugin.FileDownloaderImpl{}, kubeOnce); startErr != nil {
			return
		}
		_, startErr = client.GetTrafficPlugin(PluginName)
	})
	require.NoError(t, startErr)
}

// routerFor is the controller's view of the plugin for one Rollout: the
// RPC client Argo's client package hands out (pinging the process on every
// call, restarting it if it died), with each RpcError as an error.
type routerFor struct {
	p  rpc.TrafficRouterPlugin
	ro *v1alpha1.Rollout
}

func reconciler(t *testing.T, ro *v1alpha1.Rollout) *routerFor {
	t.Helper()
	startPlugin(t)
	p, err := client.GetTrafficPlugin(PluginName)
	if err != nil {
		// Argo's client kills a plugin that fails a ping and starts it
		// again on the controller's next reconcile: so does the test.
		t.Logf("GetTrafficPlugin: %v; again, as the next reconcile would", err)
		p, err = client.GetTrafficPlugin(PluginName)
	}
	require.NoError(t, err)
	return &routerFor{p: p, ro: ro}
}

func asError(e types.RpcError) error {
	if e.HasError() {
		return e
	}
	return nil
}

func (r *routerFor) InitPlugin() types.RpcError { return r.p.InitPlugin() }
func (r *routerFor) Type() string               { return r.p.Type() }
func (r *routerFor) UpdateHash(canary, stable string) error {
	return asError(r.p.UpdateHash(r.ro, canary, stable, nil))
}
func (r *routerFor) SetWeight(d int32, add ...v1alpha1.WeightDestination) error {
	return asError(r.p.SetWeight(r.ro, d, add))
}
func (r *routerFor) VerifyWeight(d int32) (*bool, error) {
	v, e := r.p.VerifyWeight(r.ro, d, nil)
	return v.IsVerified(), asError(e)
}
func (r *routerFor) RemoveManagedRoutes() error { return asError(r.p.RemoveManagedRoutes(r.ro)) }
func (r *routerFor) SetHeaderRoute(h *v1alpha1.SetHeaderRoute) error {
	return asError(r.p.SetHeaderRoute(r.ro, h))
}
func (r *routerFor) SetMirrorRoute(m *v1alpha1.SetMirrorRoute) error {
	return asError(r.p.SetMirrorRoute(r.ro, m))
}

// rollout is the manifests' Rollout with its plugin config pointed at s
// (adminURL and tokenFile made local) and then changed by edit.
func rollout(t *testing.T, s *server, edit func(c map[string]any)) *v1alpha1.Rollout {
	t.Helper()
	ro := loadManifests(t).rollout(t).DeepCopy()
	var c map[string]any
	require.NoError(t, json.Unmarshal(ro.Spec.Strategy.Canary.TrafficRouting.Plugins[PluginName], &c))
	if s != nil {
		c["adminURL"] = s.api
		c["tokenFile"] = filepath.Join(s.dir, "token")
	}
	if edit != nil {
		edit(c)
	}
	raw, err := json.Marshal(c)
	require.NoError(t, err)
	ro.Spec.Strategy.Canary.TrafficRouting.Plugins[PluginName] = raw
	return ro
}

func weights(blue, green uint64) map[string]uint64 {
	return map[string]uint64{"blue": blue, "green": green}
}

// verify is VerifyWeight through Argo's reconciler: true, false or nil.
func verify(t *testing.T, r *routerFor, d int32) bool {
	t.Helper()
	v, err := r.VerifyWeight(d)
	require.NoError(t, err)
	require.NotNil(t, v, "VerifyWeight answers verified or not, never not-implemented")
	return *v
}

// The plugin moves a real server's weights as Argo steps through a canary:
// each SetWeight writes {blue: 100-w, green: w}, DNS answers follow at
// once, and VerifyWeight turns true only at the effective_at the API
// reports.
func TestCanarySteps(t *testing.T) {
	s := startServer(t)
	r := reconciler(t, rollout(t, s, nil))
	require.False(t, r.InitPlugin().HasError())
	require.Equal(t, PluginName, r.Type())
	require.NoError(t, r.UpdateHash("canary-hash", "stable-hash"))

	clients := make([]netip.Prefix, 10_000)
	for i := range clients {
		clients[i] = subnet(i)
	}
	// Answers served with TTL ttl MAX before the change put its
	// effective_at exactly ttl MAX after it.
	require.NotContains(t, poolsByClient(t, s.dns, clients[:100]), "green", "at weight 0 every client gets blue")
	v0 := s.state(t).Version
	require.NoError(t, r.SetWeight(10))
	st := s.state(t)
	require.Equal(t, weights(90, 10), st.Weights)
	require.Equal(t, v0+1, st.Version, "one write")
	require.Equal(t, st.UpdatedAt.Add(ttlMax*time.Second), st.EffectiveAt, "effective_at is ttl MAX after the change")
	require.Equal(t, "argo-rollouts shop/api: canary weight 10%", s.history(t)[0])

	// Before effective_at: not verified (ttl 3 leaves about 3 s for this).
	require.True(t, time.Now().Before(st.EffectiveAt), "the test reached effective_at before VerifyWeight")
	require.False(t, verify(t, r, 10), "VerifyWeight(10) before effective_at %s", st.EffectiveAt)
	require.False(t, verify(t, r, 20), "VerifyWeight(20) while the switch holds 10")

	// The DNS share over 10,000 client subnets is what the selection
	// formula gives for 90/10, client by client.
	got := poolsByClient(t, s.dns, clients)
	green, mismatch := 0, 0
	for i, c := range clients {
		want := refPool(c.Addr(), []string{"blue", "green"}, []uint64{90, 10})
		if got[i] != want {
			if mismatch < 5 {
				t.Errorf("client %s: got pool %s, the selection formula gives %s", c, got[i], want)
			}
			mismatch++
		}
		if got[i] == "green" {
			green++
		}
	}
	require.Zero(t, mismatch, "clients answered against the formula")
	share := 100 * float64(green) / float64(len(clients))
	t.Logf("green share over %d subnets: %.2f%%", len(clients), share)
	require.InDelta(t, 10, share, 0.5, "green's share at weight 10")

	// At effective_at: verified.
	time.Sleep(time.Until(st.EffectiveAt))
	require.True(t, verify(t, r, 10), "VerifyWeight(10) after effective_at %s", st.EffectiveAt)

	// Idempotent: the same weight writes nothing.
	require.NoError(t, r.SetWeight(10))
	require.Equal(t, st.Version, s.state(t).Version, "SetWeight(10) again wrote a new version")

	for _, w := range []int32{50, 100} {
		require.NoError(t, r.SetWeight(w))
		st := s.state(t)
		require.Equal(t, weights(uint64(100-w), uint64(w)), st.Weights, "after SetWeight(%d)", w)
		require.False(t, verify(t, r, w), "VerifyWeight(%d) before effective_at", w)
		pools := poolsByClient(t, s.dns, clients[:200])
		for i, c := range clients[:200] {
			require.Equal(t, refPool(c.Addr(), []string{"blue", "green"}, []uint64{uint64(100 - w), uint64(w)}), pools[i], "client %s at weight %d", c, w)
		}
	}
	require.NotContains(t, poolsByClient(t, s.dns, clients[:200]), "blue", "at weight 100 every client gets green")

	require.NoError(t, r.RemoveManagedRoutes())
	st = s.state(t)
	require.Equal(t, weights(100, 0), st.Weights, "RemoveManagedRoutes: back to stable")
	require.NotContains(t, poolsByClient(t, s.dns, clients[:200]), "green", "after RemoveManagedRoutes every client gets blue")
	time.Sleep(time.Until(st.EffectiveAt))
	require.True(t, verify(t, r, 0))
}

// The token: none or a wrong one is refused with a message that says so
// and changes nothing; the right one is accepted.
func TestToken(t *testing.T) {
	s := startServer(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not-the-token\n"), 0o600))
	v0 := s.state(t).Version
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
		want string
	}{
		{"no token", func(c map[string]any) { delete(c, "tokenFile") }, "401"},
		{"wrong token", func(c map[string]any) { c["tokenFile"] = wrong }, "refused the token"},
		{"missing file", func(c map[string]any) { c["tokenFile"] = wrong + ".absent" }, "tokenFile: open"},
	} {
		r := reconciler(t, rollout(t, s, tc.edit))
		err := r.SetWeight(30)
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), tc.want, tc.name)
		_, err = r.VerifyWeight(30)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	require.Equal(t, v0, s.state(t).Version, "a refused call changed the switch")
	require.NoError(t, reconciler(t, rollout(t, s, nil)).SetWeight(30))
	require.Equal(t, weights(70, 30), s.state(t).Weights)
}

// An admin API that does not answer is an error for Argo to retry, never
// a panic: the plugin process serves the next call.
func TestAdminDown(t *testing.T) {
	port := freePort(t) // reserved and closed: nothing listens
	r := reconciler(t, rollout(t, nil, func(c map[string]any) {
		c["adminURL"] = fmt.Sprintf("http://127.0.0.1:%d", port)
		c["timeout"] = "2s"
		delete(c, "tokenFile")
	}))
	for range 2 {
		err := r.SetWeight(10)
		require.ErrorContains(t, err, "connection refused")
		require.ErrorContains(t, err, fmt.Sprintf("admin API http://127.0.0.1:%d", port))
		_, err = r.VerifyWeight(10)
		require.ErrorContains(t, err, "connection refused")
		require.ErrorContains(t, r.RemoveManagedRoutes(), "connection refused")
	}
	// A listener that accepts but never answers: the timeout ends the call.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	r = reconciler(t, rollout(t, nil, func(c map[string]any) {
		c["adminURL"] = "http://" + l.Addr().String()
		c["timeout"] = "300ms"
		delete(c, "tokenFile")
	}))
	_, err = r.VerifyWeight(10)
	require.ErrorContains(t, err, "no answer within the timeout (300ms)")

	s := startServer(t)
	require.NoError(t, reconciler(t, rollout(t, s, nil)).SetWeight(20), "the plugin process survived")
}

// Two SetWeight calls that read the same version race to write: one
// commits, the other gets 412, reads again and writes on top, so both
// succeed, the versions count both writes and the switch ends on one of
// the two requests, never a mix.
func TestRacingSetWeight(t *testing.T) {
	s := startServer(t)
	target, err := url.Parse(s.api)
	require.NoError(t, err)

	// A proxy that holds the first two GETs until both arrived, so both
	// writers read the same version, and counts the 412s.
	var (
		gets, conflicts atomic.Int32
		bothRead        = make(chan struct{})
	)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode == http.StatusPreconditionFailed {
			conflicts.Add(1)
		}
		return nil
	}
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet {
			switch gets.Add(1) {
			case 1:
				<-bothRead
			case 2:
				close(bothRead)
			}
		}
		req.Host = target.Host
		rp.ServeHTTP(w, req)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go proxy.Serve(l)
	defer proxy.Close()

	v0 := s.state(t).Version
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, w := range []int32{20, 30} {
		r := reconciler(t, rollout(t, s, func(c map[string]any) { c["adminURL"] = "http://" + l.Addr().String() }))
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.SetWeight(w) }()
	}
	wg.Wait()
	require.NoError(t, errs[0], "SetWeight(20)")
	require.NoError(t, errs[1], "SetWeight(30)")
	require.Equal(t, int32(1), conflicts.Load(), "exactly one write got 412")
	require.Equal(t, int32(3), gets.Load(), "two reads, then the loser's read before its retry")
	st := s.state(t)
	require.Equal(t, v0+2, st.Version, "both writes committed, one after the other")
	require.Contains(t, []map[string]uint64{weights(80, 20), weights(70, 30)}, st.Weights)
	h := s.history(t)
	require.ElementsMatch(t, []string{"argo-rollouts shop/api: canary weight 20%", "argo-rollouts shop/api: canary weight 30%"}, h[:2])
	require.Equal(t, fmt.Sprintf("argo-rollouts shop/api: canary weight %d%%", st.Weights["green"]), h[0], "the state is the last write's")
}

// While a bluegreen rollout runs on the switch, SetWeight is refused with
// a message that says why, and nothing changes.
func TestRefusedDuringBluegreenRollout(t *testing.T) {
	s := startServer(t)
	code, b := s.call(t, http.MethodPost, "/v1/switches/"+switchName+"/rollout",
		`{"steps":[{"weights":{"blue":95,"green":5},"hold":"1h"},{"weights":{"blue":0,"green":100},"hold":"1h"}]}`)
	require.Equal(t, http.StatusOK, code, "start a rollout: %s", b)
	v := s.state(t).Version
	err := reconciler(t, rollout(t, s, nil)).SetWeight(10)
	require.ErrorContains(t, err, "a bluegreen rollout is running on it")
	require.ErrorContains(t, err, "409")
	require.Equal(t, v, s.state(t).Version)
	require.Equal(t, weights(95, 5), s.state(t).Weights)
}

// Header and mirror routes do not exist in DNS: a non-empty request is a
// clear error, the empty ones Argo sends to clear a route succeed.
func TestHeaderAndMirrorRoutes(t *testing.T) {
	r := reconciler(t, rollout(t, nil, nil))
	match := []v1alpha1.HeaderRoutingMatch{{HeaderName: "X-Canary", HeaderValue: &v1alpha1.StringMatch{Exact: "yes"}}}
	err := r.SetHeaderRoute(&v1alpha1.SetHeaderRoute{Name: "canary-header", Match: match})
	require.ErrorContains(t, err, "not supported by DNS")
	require.ErrorContains(t, err, "canary-header")
	require.NoError(t, r.SetHeaderRoute(&v1alpha1.SetHeaderRoute{Name: "canary-header"}))

	err = r.SetMirrorRoute(&v1alpha1.SetMirrorRoute{Name: "mirror", Match: []v1alpha1.RouteMatch{{Method: &v1alpha1.StringMatch{Exact: "GET"}}}})
	require.ErrorContains(t, err, "not supported by DNS")
	require.NoError(t, r.SetMirrorRoute(&v1alpha1.SetMirrorRoute{Name: "mirror"}))

	err = r.SetWeight(10, v1alpha1.WeightDestination{ServiceName: "exp", Weight: 5})
	require.ErrorContains(t, err, "not supported by DNS")
}

// Config errors reach Argo as errors naming the field.
func TestConfigErrorsThroughRPC(t *testing.T) {
	for _, tc := range []struct {
		edit func(c map[string]any)
		want string
	}{
		{func(c map[string]any) { delete(c, "adminURL") }, "adminURL: missing"},
		{func(c map[string]any) { c["adminURL"] = "ftp://x" }, `adminURL "ftp://x": want an http:// or https:// URL`},
		{func(c map[string]any) { delete(c, "switch") }, "switch: missing"},
		{func(c map[string]any) { c["canaryPool"] = "Green" }, `canaryPool "Green": not a pool name`},
		{func(c map[string]any) { c["timeout"] = "soon" }, `timeout "soon"`},
		{func(c map[string]any) { c["adminUrl"] = "http://x" }, `unknown field "adminUrl"`},
		{func(c map[string]any) { c["stablePool"] = 7 }, "stablePool"},
	} {
		r := reconciler(t, rollout(t, nil, tc.edit))
		require.ErrorContains(t, r.SetWeight(10), tc.want)
		_, err := r.VerifyWeight(10)
		require.ErrorContains(t, err, tc.want)
		require.ErrorContains(t, r.RemoveManagedRoutes(), tc.want)
	}
	ro := rollout(t, nil, nil)
	delete(ro.Spec.Strategy.Canary.TrafficRouting.Plugins, PluginName)
	require.ErrorContains(t, reconciler(t, ro).SetWeight(10), "no config")

	// A pool the switch does not have.
	s := startServer(t)
	err := reconciler(t, rollout(t, s, func(c map[string]any) { c["canaryPool"] = "red" })).SetWeight(10)
	require.ErrorContains(t, err, `canaryPool "red": switch example.org has no such pool (it has [blue green])`)
	err = reconciler(t, rollout(t, s, func(c map[string]any) { c["switch"] = "nope.test" })).SetWeight(10)
	require.ErrorContains(t, err, `switch "nope.test": not found`)
	assert.Equal(t, weights(100, 0), s.state(t).Weights)
}
