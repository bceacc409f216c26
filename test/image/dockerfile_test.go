package image

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

type stage struct {
	name, image string
	ins         []instruction
}

// parseDockerfile returns the global ARG defaults and the stages.
func parseDockerfile(t *testing.T, file string) (map[string]string, []*stage) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var (
		all  []instruction
		cur  strings.Builder
		from int
	)
	for i, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			from = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		f := strings.SplitN(cur.String(), " ", 2)
		in := instruction{cmd: strings.ToUpper(f[0]), line: from}
		if len(f) == 2 {
			in.args = strings.TrimSpace(f[1])
		}
		all = append(all, in)
		cur.Reset()
	}
	global := map[string]string{}
	var stages []*stage
	for _, in := range all {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			var words []string
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			s := &stage{image: expand(words[0], global)}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				s.name = words[2]
			}
			stages = append(stages, s)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			global[k] = v
		case len(stages) == 0:
			t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return global, stages
}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		return vars[varRef.FindStringSubmatch(m)[1]]
	})
}

// builder runs a Dockerfile's stages without Docker: each stage's file
// system is a directory, WORKDIR and COPY act on it, and RUN runs the
// command with sh in the stage's working directory, with every absolute path
// the stage created (WORKDIR, COPY destinations) mapped into that directory.
type builder struct {
	t       *testing.T
	context string
	ignore  []string
	dir     string
	args    map[string]string // --build-arg values
	roots   map[string]string // stage name or index -> directory
	skipped []string
}

type stageRun struct {
	root  string
	cwd   string
	env   map[string]string
	owned []string
}

// host maps an absolute path in the stage to the directory standing for it.
func (s *stageRun) host(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(s.cwd, p)
	}
	return filepath.Join(s.root, filepath.FromSlash(p))
}

func (b *builder) ignored(rel string) bool {
	for _, pat := range b.ignore {
		if ok, _ := filepath.Match(pat, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(pat, filepath.Base(rel)); ok && !strings.Contains(pat, "/") && !strings.Contains(rel, "/") {
			return true
		}
	}
	return false
}

// copyPath copies src (a file or directory) to dst; filter says which
// relative paths (from the context root) to skip.
func copyPath(t *testing.T, src, dst string, skip func(string) bool) {
	t.Helper()
	st, err := os.Stat(src)
	require.NoError(t, err)
	if !st.IsDir() {
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		copyFile(t, src, dst, st.Mode())
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		copyFile(t, p, target, info.Mode())
		return nil
	})
	require.NoError(t, err)
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, mode.Perm()))
}

func (b *builder) run(i int, st *stage, global map[string]string) {
	t := b.t
	s := &stageRun{root: filepath.Join(b.dir, fmt.Sprintf("stage%d", i)), cwd: "/", env: map[string]string{}}
	require.NoError(t, os.MkdirAll(s.root, 0o755))
	b.roots[fmt.Sprint(i)] = s.root
	if st.name != "" {
		b.roots[st.name] = s.root
	}
	for _, in := range st.ins {
		vars := map[string]string{}
		for k, v := range global {
			vars[k] = v
		}
		for k, v := range s.env {
			vars[k] = v
		}
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			if a, ok := b.args[k]; ok {
				v = a
			}
			s.env[k] = v
		case "ENV":
			k, v, _ := strings.Cut(in.args, "=")
			s.env[k] = expand(v, vars)
		case "WORKDIR":
			s.cwd = path.Join(s.cwd, expand(in.args, vars))
			s.owned = append(s.owned, s.cwd)
			require.NoError(t, os.MkdirAll(s.host(s.cwd), 0o755))
		case "COPY":
			f := strings.Fields(expand(in.args, vars))
			from := ""
			if strings.HasPrefix(f[0], "--from=") {
				from, f = strings.TrimPrefix(f[0], "--from="), f[1:]
			}
			require.GreaterOrEqual(t, len(f), 2, "line %d: COPY needs a source and a destination", in.line)
			dst := f[len(f)-1]
			if !path.IsAbs(dst) {
				dst = path.Join(s.cwd, dst) + map[bool]string{true: "/"}[strings.HasSuffix(dst, "/") || dst == "."]
			}
			for _, src := range f[:len(f)-1] {
				var hostSrc string
				var skip func(string) bool
				if from != "" {
					root, ok := b.roots[from]
					require.True(t, ok, "line %d: COPY --from=%s names no earlier stage", in.line, from)
					hostSrc = filepath.Join(root, filepath.FromSlash(src))
				} else {
					hostSrc = filepath.Join(b.context, filepath.FromSlash(src))
					skip = b.ignored
				}
				_, err := os.Stat(hostSrc)
				require.NoError(t, err, "line %d: COPY source %s", in.line, src)
				target := dst
				if strings.HasSuffix(dst, "/") {
					if fi, _ := os.Stat(hostSrc); !fi.IsDir() {
						target = path.Join(dst, path.Base(src))
					}
				}
				copyPath(t, hostSrc, s.host(target), skip)
				s.owned = append(s.owned, path.Clean(target))
			}
		case "RUN":
			b.runCmd(s, in)
		case "USER", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL":
			// Image metadata: checked by the test itself.
		default:
			t.Fatalf("line %d: %s is not supported by this Docker-less builder", in.line, in.cmd)
		}
	}
}

// runCmd runs a RUN instruction. Package installation (apt-get) needs the
// base image's package manager and network; it is skipped, and the tools it
// installs must be on this machine instead.
func (b *builder) runCmd(s *stageRun, in instruction) {
	t := b.t
	parts := strings.Split(in.args, "&&")
	allApt := true
	for _, p := range parts {
		if !strings.HasPrefix(strings.TrimSpace(p), "apt-get ") {
			allApt = false
		}
	}
	if allApt {
		b.skipped = append(b.skipped, in.args)
		return
	}
	words := strings.Fields(in.args)
	for i, w := range words {
		if !path.IsAbs(w) {
			continue
		}
		for _, o := range s.owned {
			if w == o || strings.HasPrefix(w, strings.TrimSuffix(o, "/")+"/") {
				words[i] = s.host(w)
				break
			}
		}
	}
	cmdline := strings.Join(words, " ")
	cmd := niced("sh", "-ec", cmdline)
	cmd.Dir = s.host(s.cwd)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "line %d: RUN %s:\n%s", in.line, cmdline, out)
	t.Logf("line %d: RUN %s", in.line, in.args)
}

// TestDockerfile builds the image's file system the way the Dockerfile says,
// without Docker, and checks the result: a static binary with the same
// -version as the Makefile's, able to bind port 53 as non-root, run as a
// numeric non-root user from a distroless or scratch base.
func TestDockerfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice; skipped with -short")
	}
	harness.NeedTool(t, "git")
	root := harness.Root()
	global, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage Dockerfile")

	// The final stage: distroless static or scratch, non-root, the ports.
	final := stages[len(stages)-1]
	assert.Regexp(t, `^(scratch|gcr\.io/distroless/static(-debian\d+)?(:[a-z0-9-]+)?)$`, final.image, "final base image")
	var user, entry string
	var copies []string
	exposed := map[string]bool{}
	for _, in := range final.ins {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed[p] = true
			}
		case "ENTRYPOINT":
			entry = in.args
		case "COPY":
			copies = append(copies, in.args)
		case "RUN":
			t.Errorf("line %d: the final stage has no shell to RUN in", in.line)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	require.Regexp(t, `^[0-9]+$`, uid, "USER must be numeric so Kubernetes can verify runAsNonRoot")
	require.NotEqual(t, "0", uid, "USER must not be root")
	for _, p := range []string{"53/udp", "53/tcp", "8053"} {
		assert.True(t, exposed[p], "EXPOSE %s", p)
	}
	require.Len(t, copies, 1, "the final stage copies the binary only")
	cf := strings.Fields(copies[0])
	require.Len(t, cf, 3, "COPY --from=STAGE SRC DST: %q", copies[0])
	require.True(t, strings.HasPrefix(cf[0], "--from="), "the binary comes from a build stage: %q", copies[0])
	require.Equal(t, `["`+cf[2]+`"]`, entry, "ENTRYPOINT runs the copied binary")

	// The build stage compiles cmd/coredns statically.
	var sawBuild bool
	for _, st := range stages {
		for _, in := range st.ins {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				sawBuild = true
				assert.Contains(t, in.args, "CGO_ENABLED=0", "line %d: a static build", in.line)
				assert.Contains(t, in.args, "./cmd/coredns", "line %d", in.line)
			}
		}
	}
	require.True(t, sawBuild, "no RUN go build in the Dockerfile")

	// Run every stage but the final one, with the build args the header
	// comment tells users to pass.
	b := &builder{
		t: t, context: root, dir: t.TempDir(), roots: map[string]string{},
		args: map[string]string{"VERSION": describe(t), "GIT_COMMIT": git(t, "rev-parse", "--short", "HEAD")},
	}
	if di, err := os.ReadFile(filepath.Join(root, ".dockerignore")); err == nil {
		for _, l := range strings.Split(string(di), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				b.ignore = append(b.ignore, l)
			}
		}
	}
	needsSetcap := false
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.ins {
			if in.cmd == "RUN" && strings.Contains(in.args, "setcap") {
				needsSetcap = true
			}
		}
	}
	if needsSetcap {
		harness.NeedTool(t, "setcap")
		harness.NeedTool(t, "getcap")
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				t.Fatal("setcap needs root (CI=true)")
			}
			t.Skip("setcap needs root")
		}
	}
	for i, st := range stages[:len(stages)-1] {
		b.run(i, st, global)
	}
	t.Logf("skipped (package installation): %q", b.skipped)

	from := strings.TrimPrefix(cf[0], "--from=")
	srcRoot, ok := b.roots[from]
	require.True(t, ok, "COPY --from=%s names no stage", from)
	bin := filepath.Join(srcRoot, filepath.FromSlash(cf[1]))

	// Static: no program interpreter, no dynamic section.
	f, err := elf.Open(bin)
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "the binary has a program interpreter (dynamically linked)")
		assert.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary has a dynamic section")
	}
	assert.Nil(t, f.Section(".dynamic"), "the binary has a .dynamic section")
	f.Close()

	if needsSetcap {
		out, err := exec.Command("getcap", bin).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "cap_net_bind_service", "the non-root user can bind port 53")
	}

	// The same version as the Makefile's binary.
	mk := makeBinary(t)
	if v := stableVersion(t); v != b.args["VERSION"] {
		t.Skipf("the checkout changed between the two builds (%s, then %s); run again", b.args["VERSION"], v)
	}
	require.Equal(t, version(t, mk), version(t, bin), "-version of the image's binary and of make build's")
}
