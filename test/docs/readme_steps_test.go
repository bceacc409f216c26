package docs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// runReadmeSteps runs the first `~~~ sh` block after heading in the README
// with bash, as a user would paste it from the repository root, with
// bin/coredns standing for the binary under test, and returns its output.
// It fails the test when the block is missing, does not start the binary,
// fails or runs past timeout (the whole process group is killed then).
func runReadmeSteps(t *testing.T, heading string, timeout time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.Root(), "README.md"))
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, heading)
	require.GreaterOrEqual(t, i, 0, "README section %q", heading)
	start := strings.Index(doc[i:], "~~~ sh\n")
	require.GreaterOrEqual(t, start, 0, "a ~~~ sh block after %q", heading)
	block := doc[i+start+len("~~~ sh\n"):]
	block = block[:strings.Index(block, "~~~\n")]
	require.Contains(t, block, "bin/coredns")
	script := strings.ReplaceAll(block, "bin/coredns", harness.Binary(t))

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = harness.Root()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's %q steps:\n%s", heading, out)
	return string(out)
}
