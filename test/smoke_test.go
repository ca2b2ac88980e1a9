package test

import (
	"strings"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

func TestSingleNodeStatus(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	out, errOut, code := c.CLI("cluster", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"leader": "node1"`) {
		t.Fatalf("status: got %s, want leader node1", out)
	}
}
