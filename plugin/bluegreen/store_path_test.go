package bluegreen

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// One database file named two ways is opened once: a second open would
// wait for the first one's lock and fail.
func TestStorePathNamedTwoWays(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Cleanup(closeStores)

	a, err := openStore(filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	b, err := openStore("./state.db")
	require.NoError(t, err)
	require.Same(t, a, b)
	require.NoError(t, os.Symlink(filepath.Join(dir, "state.db"), filepath.Join(dir, "link.db")))
	c, err := openStore("link.db")
	require.NoError(t, err)
	require.Same(t, a, c)
}
