package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestDir is deploy/kubernetes/argo-rollouts.
func manifestDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deploy", "kubernetes", "argo-rollouts")
}

// manifests are the example's objects, each decoded strictly into its
// real type (Kubernetes' and Argo's), so an unknown or misspelled field
// fails.
type manifests struct {
	objects []any
	patch   *appsv1.Deployment // controller-patch.yaml
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode decodes one document strictly by its kind.
func decode(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		obj = &corev1.Namespace{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "argoproj.io/v1alpha1 Rollout":
		obj = &v1alpha1.Rollout{}
	case "argoproj.io/v1alpha1 AnalysisTemplate":
		obj = &v1alpha1.AnalysisTemplate{}
	default:
		return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows", tm.APIVersion, tm.Kind)
	}
	return obj, strictDecode(doc, obj)
}

// strictDecode decodes YAML as the API server decodes JSON: field names
// case-sensitive, unknown and duplicate fields errors.
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range docSep.Split(string(b), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
			}
		}
		if !empty {
			out = append(out, []byte(d))
		}
	}
	return out
}

var (
	manifestsOnce sync.Once
	loaded        *manifests
	loadErr       error
)

func loadManifests(t testing.TB) *manifests {
	t.Helper()
	manifestsOnce.Do(func() { loaded, loadErr = readManifests(manifestDir(t)) })
	require.NoError(t, loadErr)
	return loaded
}

func readManifests(dir string) (*manifests, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s (%v)", dir, err)
	}
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if filepath.Base(f) == "controller-patch.yaml" {
			// A patch, not an object: the fields it sets, strictly.
			m.patch = &appsv1.Deployment{}
			if err := strictDecode(b, m.patch); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			continue
		}
		for i, doc := range splitDocs(b) {
			obj, err := decode(doc)
			if err != nil {
				return nil, fmt.Errorf("%s document %d: %w", f, i, err)
			}
			m.objects = append(m.objects, obj)
		}
	}
	if m.patch == nil {
		return nil, fmt.Errorf("%s: no controller-patch.yaml", dir)
	}
	return m, nil
}

// find returns the object of type T with that namespace and name.
func find[T interface {
	GetName() string
	GetNamespace() string
}](m *manifests, ns, name string) (T, bool) {
	for _, o := range m.objects {
		if x, ok := o.(T); ok && x.GetNamespace() == ns && x.GetName() == name {
			return x, true
		}
	}
	var zero T
	return zero, false
}

func (m *manifests) configMap(t testing.TB, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, ok := find[*corev1.ConfigMap](m, ns, name)
	require.True(t, ok, "ConfigMap %s/%s", ns, name)
	return cm
}

func (m *manifests) controllerPatch(t testing.TB) *appsv1.Deployment {
	t.Helper()
	require.Len(t, m.patch.Spec.Template.Spec.InitContainers, 1)
	return m.patch
}

func (m *manifests) rollout(t testing.TB) *v1alpha1.Rollout {
	t.Helper()
	var ros []*v1alpha1.Rollout
	for _, o := range m.objects {
		if ro, ok := o.(*v1alpha1.Rollout); ok {
			ros = append(ros, ro)
		}
	}
	require.Len(t, ros, 1, "one Rollout")
	return ros[0]
}

// Strict decoding is what catches a misspelled field: the same document
// with one field misspelled fails.
func TestManifestDecodingIsStrict(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(manifestDir(t), "rollout.yaml"))
	require.NoError(t, err)
	for _, tc := range []struct{ from, to string }{
		{"stableService:", "stableServce:"},
		{"setWeight: 10", "setWeigth: 10"},
		{"successCondition:", "successCondtion:"},
		{"containerPort: 8080", "containerport: 8080"}, // case matters, as in the API server
		{"  selector:\n    matchLabels:", "  selector:\n    matchlabels:"},
	} {
		require.Contains(t, string(b), tc.from)
		bad := strings.Replace(string(b), tc.from, tc.to, 1)
		var failed error
		for _, doc := range splitDocs([]byte(bad)) {
			if _, err := decode(doc); err != nil {
				failed = err
			}
		}
		require.ErrorContains(t, failed, "unknown field", "with %s misspelled as %s", tc.from, tc.to)
	}
}

// corefileInfo is what the manifests' Corefile says about the switch.
type corefileInfo struct {
	zone       string
	pools      []string
	ttlMax     int
	adminAddr  string
	hosts      []string
	token      string
	adminBlock bool
}

func parseCorefile(t testing.TB, cf string) corefileInfo {
	t.Helper()
	var c corefileInfo
	inAdmin := false
	for _, line := range strings.Split(cf, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case inAdmin && f[0] == "}":
			inAdmin = false
		case inAdmin && f[0] == "hosts":
			c.hosts = append(c.hosts, f[1:]...)
		case strings.HasSuffix(f[0], ":53") && c.zone == "":
			c.zone = strings.TrimSuffix(f[0], ":53")
		case f[0] == "pool" && len(f) == 3:
			c.pools = append(c.pools, f[1])
		case f[0] == "ttl" && len(f) >= 2:
			n, err := strconv.Atoi(f[1])
			require.NoError(t, err, "ttl %s", f[1])
			c.ttlMax = n
		case f[0] == "admin" && len(f) >= 2:
			c.adminAddr = f[1]
			if len(f) == 3 && f[2] == "{" {
				inAdmin, c.adminBlock = true, true
			}
		case f[0] == "token" && len(f) == 2:
			c.token = f[1]
		}
	}
	return c
}

// mountedFile returns the volume that provides file in container c, and
// the file's name inside the volume.
func mountedFile(c corev1.Container, volumes []corev1.Volume, file string) (*corev1.Volume, string) {
	for _, vm := range c.VolumeMounts {
		if rel, ok := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"); ok {
			for i := range volumes {
				if volumes[i].Name == vm.Name {
					return &volumes[i], rel
				}
			}
		}
	}
	return nil, ""
}

func secretValue(t testing.TB, m *manifests, ns, name, key string) string {
	t.Helper()
	s, ok := find[*corev1.Secret](m, ns, name)
	require.True(t, ok, "Secret %s/%s", ns, name)
	if v, ok := s.StringData[key]; ok {
		return v
	}
	v, ok := s.Data[key]
	require.True(t, ok, "Secret %s/%s has key %s", ns, name, key)
	return string(v)
}

func container(t testing.TB, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// Every reference between the example's objects holds: the controller
// finds the plugin where the init container puts it and the token where
// the Rollout's tokenFile says; the adminURL names a Service of the
// bluegreen server whose admin block allows it as Host; the switch and
// pools exist; every pause is at least the switch's ttl MAX; the analysis
// template exists and reads Prometheus.
func TestManifestReferences(t *testing.T) {
	m := loadManifests(t)

	// The controller side.
	ns := defaults.Namespace() // argo-rollouts, where Argo's install puts the controller
	cm := m.configMap(t, ns, defaults.DefaultRolloutsConfigMapName)
	var items []types.PluginItem
	require.NoError(t, strictDecode([]byte(cm.Data["trafficRouterPlugins"]), &items))
	require.Len(t, items, 1)
	require.Equal(t, PluginName, items[0].Name)
	loc, err := url.Parse(items[0].Location)
	require.NoError(t, err)
	require.Equal(t, "file", loc.Scheme)
	require.Equal(t, "rollouts-plugin-trafficrouter-bluegreen", path.Base(loc.Path), "the name -install writes")

	pod := m.controllerPatch(t).Spec.Template.Spec
	init := pod.InitContainers[0]
	require.Equal(t, []string{"-install", path.Dir(loc.Path)}, init.Args, "the init container installs where the location points")
	ctl := container(t, pod.Containers, "argo-rollouts") // the name in Argo's install.yaml: the patch merges by it
	for _, c := range []corev1.Container{init, ctl} {
		v, _ := mountedFile(c, pod.Volumes, loc.Path)
		require.NotNil(t, v, "container %s mounts %s", c.Name, path.Dir(loc.Path))
		require.NotNil(t, v.EmptyDir, "%s is an emptyDir shared by both containers", v.Name)
	}

	ro := m.rollout(t)
	cfg, err := parseConfig(ro.Spec.Strategy.Canary.TrafficRouting.Plugins[PluginName])
	require.NoError(t, err, "the Rollout's plugin config")
	v, key := mountedFile(ctl, pod.Volumes, cfg.TokenFile)
	require.True(t, v != nil && v.Secret != nil, "the controller mounts tokenFile %s from a Secret", cfg.TokenFile)
	pluginToken := secretValue(t, m, ns, v.Secret.SecretName, key)

	// The server side.
	u, err := url.Parse(cfg.AdminURL)
	require.NoError(t, err)
	svcName, svcNS, ok := strings.Cut(u.Hostname(), ".")
	require.True(t, ok)
	svcNS = strings.TrimSuffix(svcNS, ".svc")
	svc, ok := find[*corev1.Service](m, svcNS, svcName)
	require.True(t, ok, "adminURL %s names a Service of the example", cfg.AdminURL)
	require.Len(t, svc.Spec.Ports, 1)
	require.Equal(t, u.Port(), strconv.Itoa(int(svc.Spec.Ports[0].Port)))

	var server *appsv1.Deployment
	for _, o := range m.objects {
		if d, ok := o.(*appsv1.Deployment); ok && d.Namespace == svcNS {
			server = d
		}
	}
	require.NotNil(t, server, "a bluegreen Deployment in %s", svcNS)
	require.Subset(t, server.Spec.Template.Labels, svc.Spec.Selector, "the admin Service selects the server's pods")
	require.Equal(t, server.Spec.Selector.MatchLabels, server.Spec.Template.Labels)
	coredns := server.Spec.Template.Spec.Containers[0]
	port := false
	for _, p := range coredns.Ports {
		if p.Name == svc.Spec.Ports[0].TargetPort.String() {
			port = true
			require.Equal(t, svc.Spec.Ports[0].Port, p.ContainerPort)
		}
	}
	require.True(t, port, "the Service's targetPort names a container port")

	require.Equal(t, []string{"-conf", "/etc/coredns/Corefile"}, coredns.Args)
	cv, cfKey := mountedFile(coredns, server.Spec.Template.Spec.Volumes, "/etc/coredns/Corefile")
	require.True(t, cv != nil && cv.ConfigMap != nil, "the Corefile comes from a ConfigMap")
	var cfItem string
	for _, it := range cv.ConfigMap.Items {
		if it.Path == cfKey {
			cfItem = it.Key
		}
	}
	cf := parseCorefile(t, m.configMap(t, svcNS, cv.ConfigMap.Name).Data[cfItem])
	require.True(t, cf.adminBlock, "admin ADDRESS { hosts ... }")
	require.Equal(t, "0.0.0.0:"+u.Port(), cf.adminAddr)
	require.Contains(t, cf.hosts, u.Hostname(), "the admin block allows adminURL's host")
	require.Contains(t, cf.hosts, u.Hostname()+".cluster.local")
	tv, tkey := mountedFile(coredns, server.Spec.Template.Spec.Volumes, cf.token)
	require.True(t, tv != nil && tv.Secret != nil, "the server's token %s comes from a Secret", cf.token)
	require.Equal(t, secretValue(t, m, svcNS, tv.Secret.SecretName, tkey), pluginToken, "the plugin's token is the server's")

	require.Equal(t, cf.zone, cfg.Switch, "the switch is the server block's zone (its default name)")
	require.Contains(t, cf.pools, cfg.StablePool)
	require.Contains(t, cf.pools, cfg.CanaryPool)

	// The Rollout.
	canary := ro.Spec.Strategy.Canary
	for _, s := range []string{canary.StableService, canary.CanaryService} {
		_, ok := find[*corev1.Service](m, ro.Namespace, s)
		require.True(t, ok, "Service %s/%s", ro.Namespace, s)
	}
	require.Equal(t, ro.Spec.Selector.MatchLabels, ro.Spec.Template.Labels)
	weightSteps, pauses, analyses := 0, 0, 0
	for i, st := range canary.Steps {
		switch {
		case st.SetWeight != nil:
			weightSteps++
		case st.Pause != nil:
			pauses++
			require.NotNil(t, st.Pause.Duration, "step %d: a timed pause", i)
			d, err := time.ParseDuration(st.Pause.Duration.String())
			require.NoError(t, err)
			require.GreaterOrEqual(t, d, time.Duration(cf.ttlMax)*time.Second, "step %d: a pause of at least ttl MAX", i)
		case st.Analysis != nil:
			for _, tr := range st.Analysis.Templates {
				analyses++
				at, ok := find[*v1alpha1.AnalysisTemplate](m, ro.Namespace, tr.TemplateName)
				require.True(t, ok, "AnalysisTemplate %s", tr.TemplateName)
				require.NotEmpty(t, at.Spec.Metrics)
				for _, mt := range at.Spec.Metrics {
					require.NotNil(t, mt.Provider.Prometheus, "metric %s reads Prometheus", mt.Name)
					require.NotEmpty(t, mt.Provider.Prometheus.Query)
				}
				var want, have []string
				for _, a := range at.Spec.Args {
					want = append(want, a.Name)
				}
				for _, a := range st.Analysis.Args {
					have = append(have, a.Name)
				}
				require.ElementsMatch(t, want, have, "the step passes the template's args")
			}
		}
	}
	require.GreaterOrEqual(t, weightSteps, 2)
	require.GreaterOrEqual(t, pauses, 2)
	require.Equal(t, 1, analyses)
}
