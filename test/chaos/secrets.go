package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/history"
)

// secretLoad is the secrets workload: clients that write unique values to
// a few hot secrets and read them back, through every node, recording a
// history for the linearizability check.
type secretLoad struct {
	api     *API
	nodes   []string
	keys    []string
	rec     history.Recorder
	seq     atomic.Int64
	timeout time.Duration
}

func newSecretLoad(api *API, nodes []string, keys int, timeout time.Duration) *secretLoad {
	s := &secretLoad{api: api, nodes: nodes, timeout: timeout}
	for i := range keys {
		s.keys = append(s.keys, fmt.Sprintf("hot-%d", i))
	}
	return s
}

// write sets key to a new unique value through node.
func (s *secretLoad) write(ctx context.Context, clientID int, node, key string) history.Op {
	op := history.Op{Client: clientID, Node: node, Kind: history.Write, Key: key,
		Value: fmt.Sprintf("v%d-c%d", s.seq.Add(1), clientID)}
	r, err := s.api.Do(ctx, "secret-write", node, http.MethodPut, "/secrets/"+key, map[string]string{"value": op.Value}, nil, s.timeout)
	op.Start, op.End = r.Start, r.End
	switch {
	case err == nil:
		op.Outcome, op.Index = history.OK, r.Index
	case refusedForSure(err):
		op.Outcome, op.Err = history.Failed, err.Error()
	default:
		op.Outcome, op.Err = history.Unknown, err.Error()
	}
	if op.Start.IsZero() { // never sent
		op.Start, op.End, op.Outcome = time.Now(), time.Now(), history.Failed
	}
	s.rec.Add(op)
	return op
}

// read gets the current value of key through node; a missing secret is
// an OK read of "".
func (s *secretLoad) read(ctx context.Context, clientID int, node, key string) history.Op {
	op := history.Op{Client: clientID, Node: node, Kind: history.Read, Key: key}
	var out struct {
		Value string `json:"value"`
	}
	r, err := s.api.Do(ctx, "secret-read", node, http.MethodGet, "/secrets/"+key+"/", nil, &out, s.timeout)
	op.Start, op.End = r.Start, r.End
	var ae *client.Error
	switch {
	case err == nil:
		op.Outcome, op.Value, op.Index = history.OK, out.Value, r.Index
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "SecretNotFound":
		op.Outcome = history.OK
	default:
		op.Outcome, op.Err = history.Failed, err.Error()
	}
	if op.Start.IsZero() {
		op.Start, op.End = time.Now(), time.Now()
	}
	s.rec.Add(op)
	return op
}

// run starts clients goroutines that alternate writes and reads of random
// keys through random nodes until stop closes, ctx ends or each made
// maxOps operations. The returned function waits for them.
func (s *secretLoad) run(ctx context.Context, seed uint64, clients, maxOps int, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for j := 0; j < maxOps && ctx.Err() == nil; j++ {
				select {
				case <-stop:
					return
				default:
				}
				node, key := s.nodes[rng.IntN(len(s.nodes))], s.keys[rng.IntN(len(s.keys))]
				var op history.Op
				if rng.IntN(2) == 0 {
					op = s.write(ctx, i, node, key)
				} else {
					op = s.read(ctx, i, node, key)
				}
				if op.Outcome != history.OK {
					// Back off a little so that the clients of a dead
					// node do not spin.
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(time.Duration(20+rng.IntN(40)) * time.Millisecond):
					}
				}
			}
		}()
	}
	return wg.Wait
}
