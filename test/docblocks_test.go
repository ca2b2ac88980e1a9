package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Documentation that tests execute (README.md, docs/tutorials/*.md):
// a block fenced ```sh is run by a test, in order, with bash -euo
// pipefail; a block fenced ```shell is shown to the reader but not run
// (it needs something the test cannot start, such as a real CA account,
// or it is what the test does itself, such as make run); ```text and
// ```json blocks are output. Every fence names its language, so that a
// command block cannot be skipped by accident.

// docBlock is one fenced block of a markdown file.
type docBlock struct {
	Line int    // line of the opening fence, from 1
	Lang string // the fence's info string: sh, shell, text, json, …
	Body string
}

// docFenceLangs are the languages a doc that tests execute may use.
var docFenceLangs = map[string]bool{"sh": true, "shell": true, "text": true, "json": true, "powershell": true}

// mdBlocks returns the fenced blocks of a markdown file, in order. It
// fails the test on a fence without a language or with one not in
// docFenceLangs (a ```bash block would silently not run), and on a block
// left open.
func mdBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the doc: %v", err)
	}
	var blocks []docBlock
	var cur *docBlock
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(fence, "```"):
			lang := strings.TrimPrefix(fence, "```")
			if !docFenceLangs[lang] {
				t.Fatalf("%s:%d: fence %q: name the block's language: sh (run by the doc test), shell (shown, not run), text or json (output)", path, n, fence)
			}
			cur = &docBlock{Line: n, Lang: lang}
			body.Reset()
		case cur != nil && fence == "```":
			cur.Body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: the block opened here is never closed", path, cur.Line)
	}
	return blocks
}

// shBlocks returns the ```sh blocks of a markdown file (the ones a test
// runs), in order; a doc with none fails the test.
func shBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	var sh []docBlock
	for _, b := range mdBlocks(t, path) {
		if b.Lang == "sh" {
			sh = append(sh, b)
		}
	}
	if len(sh) == 0 {
		t.Fatalf("%s has no sh blocks", path)
	}
	return sh
}

// docBlockTimeout bounds one block: the slowest waits for an ACME order
// or a renewal, which the blocks themselves bound well below this.
const docBlockTimeout = 3 * time.Minute

// runDocBlocks runs blocks in order, each in its own bash -euo pipefail
// with prefix (e.g. exports) before it, in dir with env. The first block
// that fails, or outlives docBlockTimeout, fails the test with the block's
// file and line and the transcript so far. It returns the transcript:
// each block's commands and their combined output.
func runDocBlocks(t *testing.T, path string, blocks []docBlock, dir string, env []string, prefix string) string {
	t.Helper()
	var transcript strings.Builder
	for _, b := range blocks {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), docBlockTimeout)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", prefix+b.Body)
		cmd.Dir, cmd.Env = dir, env
		// The block's processes get a group of their own, so that a
		// block past its deadline is killed with all it started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		fmt.Fprintf(&transcript, "--- %s:%d (%.1fs)\n$ %s\n%s", path, b.Line, time.Since(start).Seconds(),
			strings.ReplaceAll(strings.TrimSpace(b.Body), "\n", "\n$ "), out)
		if timedOut {
			t.Fatalf("%s:%d: block still running after %v:\n%s\ntranscript:\n%s", path, b.Line, docBlockTimeout, b.Body, transcript.String())
		}
		if err != nil {
			t.Fatalf("%s:%d: block failed (%v):\n%s\ntranscript:\n%s", path, b.Line, err, b.Body, transcript.String())
		}
	}
	if testing.Verbose() {
		t.Logf("transcript of %s:\n%s", path, transcript.String())
	}
	return transcript.String()
}

// docEnv returns this process's environment without the variables that
// point the CLI at a vault (a developer's own CERTVAULT_*), plus extra.
// GORACE stays: TestMain (testcluster.Main) put atexit_sleep_ms=0 in it,
// so the -race CLI a doc runs often does not sleep a second at each exit.
func docEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTVAULT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// docExports returns the lines of a doc's shell blocks that export the
// variables make run's banner prints (PATH and CERTVAULT_*), in order.
func docExports(t *testing.T, path string) []string {
	t.Helper()
	var lines []string
	for _, b := range mdBlocks(t, path) {
		if b.Lang != "shell" {
			continue
		}
		for _, l := range strings.Split(b.Body, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "export CERTVAULT_") || strings.HasPrefix(l, "export PATH=") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		t.Fatalf("%s exports nothing in its shell blocks", path)
	}
	return lines
}
