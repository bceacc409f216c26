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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bluegreen-dns/bluegreen/test/harness"
)

// TestReadmeHTTPS runs the README's HTTPS example as a user would paste
// it: openssl makes a certificate, the built binary serves the admin API
// over TLS, curl --cacert reads a switch, a name from hosts passes and
// plain HTTP gets 400.
func TestReadmeHTTPS(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "bash"} {
		harness.NeedTool(t, tool)
	}
	b, err := os.ReadFile(filepath.Join(harness.Root(), "README.md"))
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "### The admin API over HTTPS")
	require.GreaterOrEqual(t, i, 0)
	start := strings.Index(doc[i:], "~~~ sh\n")
	require.GreaterOrEqual(t, start, 0)
	block := doc[i+start+len("~~~ sh\n"):]
	block = block[:strings.Index(block, "~~~\n")]
	require.Contains(t, block, "curl -s --cacert")
	require.Contains(t, block, "bin/coredns")
	script := strings.ReplaceAll(block, "bin/coredns", harness.Binary(t))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = harness.Root()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's HTTPS example:\n%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3, "explain, then two status codes:\n%s", out)
	assert.Contains(t, lines[0], `"pool":"blue"`, "explain over HTTPS")
	assert.Equal(t, "200", lines[1], "a Host from hosts")
	assert.Equal(t, "400", lines[2], "plain HTTP to the TLS listener")
}
