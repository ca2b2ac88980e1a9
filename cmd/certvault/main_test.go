package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// deadAddr is a vault address where nothing answers, so that a command
// that got past its usage checks fails with a vault error (exit 1)
// instead of reaching a real vault.
const deadAddr = "https://127.0.0.1:1"

// runCLI runs the CLI in-process and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// commands returns every visible command of the tree with the words
// that name it on the command line.
func commands(t *testing.T) map[string]*cobra.Command {
	t.Helper()
	cmds := map[string]*cobra.Command{}
	walk(newRoot(io.Discard), func(c *cobra.Command) {
		for p := c; p != nil; p = p.Parent() {
			if p.Hidden {
				return
			}
		}
		cmds[c.CommandPath()] = c
	})
	if len(cmds) < 50 {
		t.Fatalf("walk found %d commands, want the whole tree (50 or more)", len(cmds))
	}
	return cmds
}

func words(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }

// wantUsage asserts that args is a usage error: exit 2, a one-line
// message and the hint to --help.
func wantUsage(t *testing.T, args ...string) {
	t.Helper()
	code, _, stderr := runCLI(t, args...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 2 || len(lines) != 2 || !strings.HasPrefix(lines[0], "certvault: ") || !strings.Contains(lines[1], "--help' for usage.") {
		t.Errorf("certvault %s: exit %d, stderr %q; want exit 2, one message line and the hint to --help", strings.Join(args, " "), code, stderr)
	}
}

// minArgs returns the fewest positional arguments c accepts.
func minArgs(c *cobra.Command) int {
	for n := 0; n < 5; n++ {
		if c.Args == nil || c.Args(c, make([]string, n)) == nil {
			return n
		}
	}
	return 5
}

// TestUsageErrorsExit2 walks the whole command tree: an unknown
// subcommand, an unknown flag, a missing argument or required flag, too
// many arguments and a bad value of a typed flag all exit 2.
func TestUsageErrorsExit2(t *testing.T) {
	wantUsage(t, "no-such-command")
	wantUsage(t, "help", "no-such-command")
	for path, c := range commands(t) {
		w := words(c)
		wantUsage(t, append(append([]string{}, w...), "--no-such-flag", "--addr", deadAddr)...)
		if c.HasSubCommands() {
			wantUsage(t, append(append([]string{}, w...), "no-such-command", "--addr", deadAddr)...)
			continue
		}
		n := minArgs(c)
		if n > 0 {
			wantUsage(t, append(append([]string{}, w...), "--addr", deadAddr)...)
		}
		for extra := n + 1; extra <= n+3; extra++ {
			if c.Args != nil && c.Args(c, make([]string, extra)) != nil {
				a := append([]string{}, w...)
				for i := 0; i < extra; i++ {
					a = append(a, "x")
				}
				wantUsage(t, append(a, "--addr", deadAddr)...)
				break
			}
		}
		valid := append([]string{}, w...)
		for i := 0; i < n; i++ {
			valid = append(valid, "x")
		}
		required := false
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Annotations[cobra.BashCompOneRequiredFlag]; ok {
				required = true
			}
			switch f.Value.Type() {
			case "bool", "int", "int64", "uint", "duration", "float64":
				wantUsage(t, append(append([]string{}, valid...), "--"+f.Name+"=not-a-value", "--addr", deadAddr)...)
			}
		})
		if required {
			wantUsage(t, append(append([]string{}, valid...), "--addr", deadAddr)...)
		}
		_ = path
	}
}

// TestVaultErrorExit1 checks that an error from the vault (here: none
// answers) is exit 1, not a usage error, and success is 0.
func TestVaultErrorExit1(t *testing.T) {
	code, _, stderr := runCLI(t, "cert", "get", "web", "--addr", deadAddr)
	if code != 1 || strings.Contains(stderr, "--help") {
		t.Errorf("cert get with no vault: exit %d, stderr %q; want exit 1 without a usage hint", code, stderr)
	}
	if code, _, stderr := runCLI(t, "cert", "get", "--help"); code != 0 {
		t.Errorf("cert get --help: exit %d, stderr %q; want 0", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, "cert"); code != 0 || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("cert alone: exit %d, stdout %q, stderr %q; want its help and exit 0", code, stdout, stderr)
	}
}

// TestEveryLeafHasExamples walks the tree: every command without
// subcommands has an Example, its --help shows it, and no help renders a
// bool flag as --flag[=true|false].
func TestEveryLeafHasExamples(t *testing.T) {
	for path, c := range commands(t) {
		code, stdout, stderr := runCLI(t, append(words(c), "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d, stderr %q", path, code, stderr)
		}
		if strings.Contains(stdout, "[=true|false]") {
			t.Errorf("%s --help renders a bool flag as --flag[=true|false]:\n%s", path, stdout)
		}
		if c.HasSubCommands() {
			if strings.Contains(stdout, "\n  "+path+" [flags]\n") {
				t.Errorf("%s --help offers the group as a command of its own:\n%s", path, stdout)
			}
			continue
		}
		if strings.TrimSpace(c.Example) == "" || !strings.Contains(stdout, "Examples:") {
			t.Errorf("%s: no Examples section in --help", path)
		}
	}
}
