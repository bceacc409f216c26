package docs

import (
	"strings"
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
	out := runReadmeSteps(t, "### The admin API over HTTPS", 60*time.Second)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, "explain, then two status codes:\n%s", out)
	assert.Contains(t, lines[0], `"pool":"blue"`, "explain over HTTPS")
	assert.Equal(t, "200", lines[1], "a Host from hosts")
	assert.Equal(t, "400", lines[2], "plain HTTP to the TLS listener")
}
