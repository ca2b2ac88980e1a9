package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certvault/certvault/internal/atomicfile"
)

// StateFile is the agent's local state in its state directory: what each
// binding holds, when it was last checked, the last error. The agent
// restarts from it when the vault is unreachable, and 'certvault-agent
// status' prints it.
const StateFile = "agent-state.json"

// State is the agent's local state.
type State struct {
	// Updated is when the agent last wrote the file; Vault whether the
	// last exchange with the vault worked, and LastVaultError why not.
	Updated        time.Time `json:"updated"`
	VaultOK        bool      `json:"vault_ok"`
	LastVaultError string    `json:"last_vault_error,omitempty"`
	// Index is the vault state the last watch answer reflected.
	Index    uint64                   `json:"index"`
	Bindings map[string]*BindingState `json:"bindings"`
}

// BindingState is one binding's local state.
type BindingState struct {
	// Object is certificates/NAME or secrets/NAME; Path the directory or
	// file of the binding.
	Object string `json:"object"`
	Path   string `json:"path"`
	// Version is the installed version; Target the version the vault
	// last asked for.
	Version string    `json:"version"`
	Target  string    `json:"target,omitempty"`
	Serial  string    `json:"serial,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// Hashes are the SHA-256 (hex) of each file's content, by base name:
	// what drift is measured against after a restart.
	Hashes map[string]string `json:"hashes,omitempty"`
	// Failed is a version that failed to install or to pass its check;
	// the agent does not try it again.
	Failed     string    `json:"failed,omitempty"`
	LastResult string    `json:"last_result,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	LastChange time.Time `json:"last_change,omitzero"`
	LastCheck  time.Time `json:"last_check,omitzero"`
}

// LoadState reads the state in dir; a missing file is an empty state.
func LoadState(dir string) (*State, error) {
	st := &State{Bindings: map[string]*BindingState{}}
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("decode agent state %s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Bindings == nil {
		st.Bindings = map[string]*BindingState{}
	}
	return st, nil
}

// save writes the state atomically.
func (st *State) save(dir string) error {
	st.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, StateFile), data, 0o600); err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	return nil
}
