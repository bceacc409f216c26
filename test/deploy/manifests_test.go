// Package deploy tests deploy/kubernetes: the manifests are valid YAML with
// the fields Kubernetes requires and consistent references, and every
// Corefile in them starts with the built binary, the cluster-dependent parts
// replaced by local stand-ins.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// object is one Kubernetes object from a manifest.
type object struct {
	file string
	doc  int
	m    map[string]any
}

func (o object) String() string {
	return fmt.Sprintf("%s#%d %s/%s", filepath.Base(o.file), o.doc, o.kind(), o.name())
}
func (o object) kind() string { s, _ := o.m["kind"].(string); return s }
func (o object) name() string { s, _ := get(o.m, "metadata", "name").(string); return s }

// get walks nested maps.
func get(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func list(v any) []any { l, _ := v.([]any); return l }

func strMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		s, _ := x.(string)
		out[k] = s
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// examples returns the example directories under deploy/kubernetes and the
// objects of each.
func examples(t *testing.T) map[string][]object {
	t.Helper()
	root := filepath.Join(harness.Root(), "deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(root, "*", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no manifests under %s", root)
	out := map[string][]object{}
	for _, f := range files {
		if filepath.Base(filepath.Dir(f)) == "argo-rollouts" {
			// Argo's kinds and a patch: the plugin's module tests it, strictly typed.
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var m map[string]any
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &m), "%s document %d is not valid YAML", f, i)
			dir := filepath.Base(filepath.Dir(f))
			out[dir] = append(out[dir], object{file: f, doc: i, m: m})
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func find(objs []object, kind, name string) (object, bool) {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return object{}, false
}

var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$`)

// TestManifests checks every object for what the API server requires and
// every reference between objects of an example.
func TestManifests(t *testing.T) {
	all := examples(t)
	require.Contains(t, all, "cluster-dns")
	require.Contains(t, all, "authoritative")
	for dir, objs := range all {
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.kind()]++
			t.Run(dir+"/"+o.String(), func(t *testing.T) { checkObject(t, o, objs) })
		}
		for _, k := range []string{"ConfigMap", "Secret", "Service"} {
			require.NotZero(t, kinds[k], "%s has no %s", dir, k)
		}
		require.NotZero(t, kinds["Deployment"]+kinds["StatefulSet"], "%s has no workload", dir)
	}
}

func checkObject(t *testing.T, o object, objs []object) {
	require.NotEmpty(t, o.m["apiVersion"], "apiVersion")
	require.NotEmpty(t, o.kind(), "kind")
	require.Regexp(t, dnsName, o.name(), "metadata.name")
	if ns, ok := get(o.m, "metadata", "namespace").(string); ok {
		if _, found := find(objs, "Namespace", ns); !found {
			require.Contains(t, []string{"kube-system", "default"}, ns, "namespace %s is neither built in nor defined", ns)
		}
	}
	want := map[string]string{
		"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "ServiceAccount": "v1", "Namespace": "v1",
		"PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
		"ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
	}
	av, ok := want[o.kind()]
	require.True(t, ok, "kind %s is not one this test knows", o.kind())
	require.Equal(t, av, o.m["apiVersion"], "apiVersion of a %s", o.kind())

	switch o.kind() {
	case "ConfigMap":
		data, ok := o.m["data"].(map[string]any)
		require.True(t, ok && len(data) > 0, "a ConfigMap with data")
		for k, v := range data {
			require.Regexp(t, `^[-._a-zA-Z0-9]+$`, k, "ConfigMap key")
			_, isStr := v.(string)
			require.True(t, isStr, "ConfigMap value %s is a string", k)
		}
	case "Secret":
		require.True(t, len(strMap(o.m["stringData"]))+len(strMap(o.m["data"])) > 0, "a Secret with data")
	case "PersistentVolumeClaim":
		checkPVCSpec(t, get(o.m, "spec"))
	case "Service":
		ports := list(get(o.m, "spec", "ports"))
		require.NotEmpty(t, ports, "spec.ports")
		for _, p := range ports {
			n, ok := get(p, "port").(float64)
			require.True(t, ok && n > 0 && n < 65536, "port %v", p)
			require.Contains(t, []any{"TCP", "UDP", "SCTP", nil}, get(p, "protocol"))
		}
		if len(ports) > 1 {
			for _, p := range ports {
				require.NotEmpty(t, get(p, "name"), "a Service with several ports names each")
			}
		}
		sel := strMap(get(o.m, "spec", "selector"))
		require.NotEmpty(t, sel, "spec.selector")
		matched := false
		for _, w := range objs {
			if w.kind() == "Deployment" || w.kind() == "StatefulSet" {
				if subset(sel, strMap(get(w.m, "spec", "template", "metadata", "labels"))) {
					matched = true
				}
			}
		}
		require.True(t, matched, "the selector %v matches no workload's pod labels", sel)
	case "ClusterRoleBinding":
		role := get(o.m, "roleRef", "name").(string)
		_, ok := find(objs, get(o.m, "roleRef", "kind").(string), role)
		require.True(t, ok, "roleRef %s is defined", role)
		for _, s := range list(o.m["subjects"]) {
			_, ok := find(objs, get(s, "kind").(string), get(s, "name").(string))
			require.True(t, ok, "subject %v is defined", s)
		}
	case "Deployment", "StatefulSet":
		checkWorkload(t, o, objs)
	}
}

func checkPVCSpec(t *testing.T, spec any) {
	require.NotEmpty(t, list(get(spec, "accessModes")), "accessModes")
	require.NotEmpty(t, get(spec, "resources", "requests", "storage"), "resources.requests.storage")
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func checkWorkload(t *testing.T, o object, objs []object) {
	spec := get(o.m, "spec")
	sel := strMap(get(spec, "selector", "matchLabels"))
	labels := strMap(get(spec, "template", "metadata", "labels"))
	require.NotEmpty(t, sel, "spec.selector.matchLabels")
	require.True(t, subset(sel, labels), "selector %v must match the template's labels %v", sel, labels)
	pod := get(spec, "template", "spec")

	if sa, ok := get(pod, "serviceAccountName").(string); ok {
		_, found := find(objs, "ServiceAccount", sa)
		require.True(t, found, "serviceAccountName %s is defined", sa)
	}

	// Volumes: each defined once, each reference resolvable, items' keys exist.
	volumes := map[string]any{}
	for _, v := range list(get(pod, "volumes")) {
		n := get(v, "name").(string)
		require.NotContains(t, volumes, n, "volume %s defined twice", n)
		volumes[n] = v
		switch {
		case get(v, "configMap") != nil:
			cm, ok := find(objs, "ConfigMap", get(v, "configMap", "name").(string))
			require.True(t, ok, "volume %s: ConfigMap %v is defined", n, get(v, "configMap", "name"))
			data := strMap(cm.m["data"])
			for _, it := range list(get(v, "configMap", "items")) {
				require.Contains(t, data, get(it, "key"), "volume %s: the ConfigMap has key %v", n, get(it, "key"))
				require.NotEmpty(t, get(it, "path"))
			}
		case get(v, "secret") != nil:
			sec, ok := find(objs, "Secret", get(v, "secret", "secretName").(string))
			require.True(t, ok, "volume %s: Secret %v is defined", n, get(v, "secret", "secretName"))
			keys := strMap(sec.m["stringData"])
			for k, x := range strMap(sec.m["data"]) {
				keys[k] = x
			}
			for _, it := range list(get(v, "secret", "items")) {
				require.Contains(t, keys, get(it, "key"), "volume %s: the Secret has key %v", n, get(it, "key"))
			}
		case get(v, "persistentVolumeClaim") != nil:
			_, ok := find(objs, "PersistentVolumeClaim", get(v, "persistentVolumeClaim", "claimName").(string))
			require.True(t, ok, "volume %s: the claim is defined", n)
		case get(v, "emptyDir") != nil:
		default:
			t.Fatalf("volume %s: a kind this test does not know", n)
		}
	}
	for _, c := range list(get(spec, "volumeClaimTemplates")) {
		n := get(c, "metadata", "name").(string)
		volumes[n] = c
		checkPVCSpec(t, get(c, "spec"))
	}

	containers := list(get(pod, "containers"))
	require.NotEmpty(t, containers, "template.spec.containers")
	for _, c := range containers {
		require.Regexp(t, dnsName, get(c, "name"), "container name")
		require.NotEmpty(t, get(c, "image"), "container image")
		portNames := map[string]bool{}
		for _, p := range list(get(c, "ports")) {
			n, ok := get(p, "containerPort").(float64)
			require.True(t, ok && n > 0 && n < 65536, "containerPort %v", p)
			require.Contains(t, []any{"TCP", "UDP", "SCTP", nil}, get(p, "protocol"))
			if name, ok := get(p, "name").(string); ok {
				require.LessOrEqual(t, len(name), 15, "port name %s", name)
				require.False(t, portNames[name], "port name %s twice", name)
				portNames[name] = true
			}
		}
		mounts := map[string]bool{}
		for _, m := range list(get(c, "volumeMounts")) {
			n := get(m, "name").(string)
			require.Contains(t, volumes, n, "volumeMount %s names a defined volume", n)
			mp := get(m, "mountPath").(string)
			require.True(t, path.IsAbs(mp), "mountPath %s", mp)
			require.False(t, mounts[mp], "two mounts at %s", mp)
			mounts[mp] = true
		}
		// -conf FILE names a file the mounts provide.
		args := list(get(c, "args"))
		for i, a := range args {
			if a == "-conf" {
				require.Greater(t, len(args), i+1)
				conf := args[i+1].(string)
				files := podFiles(t, c, volumes, objs)
				require.Contains(t, files, conf, "-conf %s is a file the volumes provide (have %v)", conf, keys(files))
			}
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// podFiles returns the files a container sees from ConfigMap and Secret
// volumes (absolute path -> content), and the directories of writable
// volumes (path -> "").
func podFiles(t *testing.T, c any, volumes map[string]any, objs []object) map[string]string {
	files := map[string]string{}
	for _, m := range list(get(c, "volumeMounts")) {
		mp := get(m, "mountPath").(string)
		v := volumes[get(m, "name").(string)]
		var data map[string]string
		var items []any
		switch {
		case get(v, "configMap") != nil:
			cm, _ := find(objs, "ConfigMap", get(v, "configMap", "name").(string))
			data, items = strMap(cm.m["data"]), list(get(v, "configMap", "items"))
		case get(v, "secret") != nil:
			sec, _ := find(objs, "Secret", get(v, "secret", "secretName").(string))
			data, items = strMap(sec.m["stringData"]), list(get(v, "secret", "items"))
		default:
			files[mp+"/"] = ""
			continue
		}
		if len(items) == 0 {
			for k, x := range data {
				files[path.Join(mp, k)] = x
			}
		}
		for _, it := range items {
			files[path.Join(mp, get(it, "path").(string))] = data[get(it, "key").(string)]
		}
	}
	return files
}

// corefiles returns, for each workload container that loads a Corefile with
// -conf, the files it sees and the Corefile's path.
type corefileCase struct {
	example, conf string
	files         map[string]string
}

func corefiles(t *testing.T) []corefileCase {
	var out []corefileCase
	for dir, objs := range examples(t) {
		for _, o := range objs {
			if o.kind() != "Deployment" {
				continue
			}
			volumes := map[string]any{}
			for _, v := range list(get(o.m, "spec", "template", "spec", "volumes")) {
				volumes[get(v, "name").(string)] = v
			}
			for _, c := range list(get(o.m, "spec", "template", "spec", "containers")) {
				args := list(get(c, "args"))
				for i, a := range args {
					if a == "-conf" && i+1 < len(args) {
						out = append(out, corefileCase{example: dir, conf: args[i+1].(string), files: podFiles(t, c, volumes, objs)})
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].example < out[j].example })
	return out
}

// TestEveryCorefileIsTested: every ConfigMap key named Corefile is loaded by
// some Deployment (and so started by TestCorefiles).
func TestEveryCorefileIsTested(t *testing.T) {
	loaded := map[string]bool{}
	for _, c := range corefiles(t) {
		loaded[c.files[c.conf]] = true
	}
	n := 0
	for _, objs := range examples(t) {
		for _, o := range objs {
			if cf, ok := strMap(o.m["data"])["Corefile"]; ok && o.kind() == "ConfigMap" {
				n++
				require.True(t, loaded[cf], "%s: its Corefile is loaded by no Deployment", o)
				require.True(t, bytes.Contains([]byte(cf), []byte("bluegreen")), "%s: a Corefile without bluegreen", o)
			}
		}
	}
	require.GreaterOrEqual(t, n, 2)
}
