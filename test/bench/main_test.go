//go:build bench

package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

func TestMain(m *testing.M) {
	code := testcluster.Main(m)
	// The load generator's binary, built once per process.
	if loadgenPath != "" {
		os.RemoveAll(filepath.Dir(loadgenPath))
	}
	os.Exit(code)
}
