package core

import (
	"encoding/json"
	"fmt"

	"github.com/certvault/certvault/raftstore"
)

// ListJSON decodes every plain JSON record under prefix whose key sorts
// after after ("" for all), in key order; a record that does not decode
// is skipped. It is the one listing loop of the agents, bindings,
// deliveries, subscriptions and audit incidents.
func ListJSON[T any](n *Core, prefix, after string) []T {
	es, _ := n.Store.List(prefix, after, 0)
	out := make([]T, 0, len(es))
	for _, e := range es {
		var v T
		if decodeJSONEntry(e, &v) == nil {
			out = append(out, v)
		}
	}
	return out
}

// decodeJSONEntry decodes a plain JSON entry.
func decodeJSONEntry(e raftstore.Entry, v any) error {
	if err := json.Unmarshal(e.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return nil
}
