package vault

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/barrier"
)

// hsmHealthKeyID is the CKA_ID of a small AES key the vault keeps in the
// HSM when it uses the token for keys but not for its seal, so that it can
// tell a token that went away from one that answers.
var hsmHealthKeyID = []byte("certvault-health")

// hsmCheckInterval is how often the HSM is checked.
const hsmCheckInterval = 2 * time.Second

// hsmProbeID is the key whose presence says the token is there.
func (n *Node) hsmProbeID() []byte {
	if n.opts.Seal == barrier.SealPKCS11 {
		return barrier.Pkcs11SealKeyID
	}
	return hsmHealthKeyID
}

// watchHSM checks the HSM every hsmCheckInterval until ctx ends, and
// records the outcome: while the HSM is lost, /readyz fails and writes are
// refused (reads of what the barrier already decrypts still work; no key
// in the HSM can be used anyway).
func (n *Node) watchHSM(ctx context.Context) {
	if n.HSM == nil {
		return
	}
	if n.opts.Seal != barrier.SealPKCS11 {
		if _, err := n.HSM.SealAEAD(hsmHealthKeyID, true); err != nil {
			n.Log.Warn("cannot create the HSM health key", "err", err)
		}
	}
	t := time.NewTicker(hsmCheckInterval)
	defer t.Stop()
	for {
		err := n.HSM.Ping(n.hsmProbeID())
		prev := n.hsmErr.Load()
		if err != nil {
			// Dead sessions do not come back by themselves: log in anew.
			if rerr := n.HSM.Reopen(); rerr == nil {
				err = n.HSM.Ping(n.hsmProbeID())
			}
		}
		switch {
		case err != nil && prev == nil:
			n.Log.Error("lost the HSM: writes are refused until it is back", "err", err)
		case err == nil && prev != nil:
			n.Log.Info("the HSM is back")
		}
		if err != nil {
			n.hsmErr.Store(&err)
		} else {
			n.hsmErr.Store(nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hsmLost returns why the HSM is unusable, or "".
func (n *Node) hsmLost() string {
	if p := n.hsmErr.Load(); p != nil {
		return fmt.Sprintf("HSM unreachable: %v", *p)
	}
	return ""
}

// refuseWritesWithoutHSM answers 503 to requests that change state while
// the HSM is lost.
func (n *Node) refuseWritesWithoutHSM(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	why := n.hsmLost()
	if why == "" {
		return false
	}
	front.WriteError(w, &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: why + "; writes are refused until the HSM answers again"})
	return true
}
