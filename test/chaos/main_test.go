package chaos

import (
	"os"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }
