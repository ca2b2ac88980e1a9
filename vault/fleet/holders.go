package fleet

import (
	"encoding/json"
	"strings"

	"github.com/certvault/certvault/internal/objname"
)

// Holders returns, by version, the agents whose last report on the
// object kind/name says they hold that version (installed, unchanged or
// repaired), for the console's "which machines serve which version".
func (f *Fleet) Holders(kind, name string) map[string][]string {
	object := kind + "/" + objname.Canonical(name)
	es, _ := f.Store.List(prefixAgentBindings, "", 0)
	out := map[string][]string{}
	for _, e := range es {
		if !strings.HasSuffix(e.Key, "/"+object) {
			continue
		}
		var st BindingState
		if json.Unmarshal(e.Value, &st) != nil {
			continue
		}
		switch st.Result {
		case "installed", "unchanged", "repaired":
			label := st.Agent
			if rec, _, ok := f.Agent(st.Agent); ok && rec.Name != "" {
				label = rec.Name + " (" + st.Agent + ")"
			}
			out[st.Version] = append(out[st.Version], label)
		}
	}
	return out
}
