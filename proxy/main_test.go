package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// session, copier and listener must be gone once the servers are closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
