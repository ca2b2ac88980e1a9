package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// The nemeses. Each breaks something for a while (its hold) and then
// undoes it.
const (
	// NemIsolateLeader cuts the leader off from the other nodes, both
	// ways (the clients still reach it).
	NemIsolateLeader = "isolate-leader"
	// NemSplit cuts the cluster into a majority and a minority of one
	// node chosen at random (the leader or not).
	NemSplit = "split"
	// NemOneWay makes the packets of one node to another vanish while
	// the other direction works: A hears B, B does not hear A.
	NemOneWay = "one-way"
	// NemPauseLeader freezes the leader with SIGSTOP for longer than the
	// election timeout, then resumes it with SIGCONT.
	NemPauseLeader = "pause-leader"
	// NemKillOne kills a node with SIGKILL and restarts it.
	NemKillOne = "kill-one"
	// NemKillTwo kills two nodes at once (the cluster loses its
	// majority) and restarts them.
	NemKillTwo = "kill-two"
	// NemDiskFull fills a node's data directory (a small tmpfs) and
	// frees it again.
	NemDiskFull = "disk-full"
	// NemSlowLink adds netem delay and loss to a node's link, where the
	// kernel has netem.
	NemSlowLink = "slow-link"
)

// AllNemeses lists the nemeses in the order the schedule draws from.
var AllNemeses = []string{NemIsolateLeader, NemSplit, NemOneWay, NemPauseLeader, NemKillOne, NemKillTwo, NemDiskFull, NemSlowLink}

// Step is one entry of a schedule: a nemesis, how long it holds, and two
// random numbers that pick its targets at run time (the leader is only
// known then).
type Step struct {
	Nemesis string
	Hold    time.Duration
	// Quiet is the time the load runs undisturbed after the heal and the
	// recovery.
	Quiet       time.Duration
	Pick, Pick2 int
}

func (s Step) String() string {
	return fmt.Sprintf("%s for %s (pick %d/%d), quiet %s", s.Nemesis, s.Hold.Round(100*time.Millisecond), s.Pick, s.Pick2, s.Quiet.Round(100*time.Millisecond))
}

// Schedule draws n steps from seed: the same seed gives the same
// schedule on any machine (where netem is missing the slow-link steps are
// skipped, the others stay).
func Schedule(seed uint64, n int, nemeses []string) []Step {
	rng := rand.New(rand.NewPCG(seed, 0x63686173))
	out := make([]Step, n)
	for i := range out {
		s := Step{Nemesis: nemeses[rng.IntN(len(nemeses))], Pick: rng.IntN(1 << 16), Pick2: rng.IntN(1 << 16)}
		s.Hold = time.Duration(2000+rng.IntN(4000)) * time.Millisecond
		if s.Nemesis == NemPauseLeader {
			// Past the election timeout by a good margin: the followers
			// notice a silent leader after one to two timeouts, so the
			// pause lasts 2.5 to 4 of them (the nodes run with
			// testcluster.RaftTimeout).
			s.Hold = testcluster.RaftTimeout*5/2 + testcluster.RaftTimeout*3/2*time.Duration(rng.IntN(3000))/3000
		}
		s.Quiet = time.Duration(1000+rng.IntN(2000)) * time.Millisecond
		out[i] = s
	}
	return out
}

// fillDisk fills the file system of dir with one file at path. It takes
// all the free space in one fallocate where it can, else writes until
// ENOSPC.
func fillDisk(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create filler: %w", err)
	}
	defer f.Close()
	var size int64
	for range 100 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			return fmt.Errorf("statfs: %w", err)
		}
		free := int64(st.Bavail) * st.Bsize
		if free == 0 {
			return nil
		}
		err := syscall.Fallocate(int(f.Fd()), 0, size, free)
		if err == nil {
			size += free
			continue
		}
		if errors.Is(err, syscall.EOPNOTSUPP) {
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("fallocate filler: %w", err)
		}
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("write filler: %w", err)
		}
	}
}

// describeSteps renders a schedule, one step a line.
func describeSteps(steps []Step) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "  %3d. %s\n", i+1, s)
	}
	return b.String()
}
