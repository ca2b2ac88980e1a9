package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every name the harness gives a namespace, a link or a mount starts with
// nsPrefix followed by the process ID of the test binary, so that a later
// run can tell the leftovers of a dead run (its process is gone) from
// those of a run still going on beside it.
const (
	nsPrefix   = "cvchaos-"
	linkPrefix = "cvc"
	// subnetBase is the private range: 10.77.S.0/24, one S per run.
	subnetBase = "10.77."
	// apiPort and raftPort are the same on every node: each has an
	// address of its own.
	apiPort  = 8443
	raftPort = 8201
	// hostOctet is the harness's own address on the private range.
	hostOctet = 254
	// bogusMAC is the link-layer address a blocked peer is pinned to:
	// frames to it go nowhere, silently, like packets lost in a
	// partition.
	bogusMAC = "02:00:5e:00:53:01"
)

// Network is a private network for the nodes of one run: a namespace
// holding a bridge, one namespace per node joined to it by a veth pair,
// and a veth pair from the harness's own namespace, so that the clients
// reach every node. Partitions are made by pinning a peer's address to a
// link-layer address nobody has, in the sender's namespace: its packets
// to that peer vanish without an error, as in a real partition, and each
// direction is cut separately.
type Network struct {
	run    string // nsPrefix + pid
	subnet int
	nodes  []string // node IDs, in order: node i+1 has octet i+1
	t      testing.TB

	mu      sync.Mutex
	blocked map[[2]int]bool // from, to (1-based octets) cut
	slowed  map[int]bool
	// NetemNote says why the netem nemesis is skipped ("" when it runs).
	NetemNote string
}

// ip runs /usr/sbin/ip (or ip from PATH) with args.
func ip(args ...string) error {
	bin := "ip"
	if _, err := os.Stat("/usr/sbin/ip"); err == nil {
		bin = "/usr/sbin/ip"
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// tc runs tc inside namespace ns.
func tc(ns string, args ...string) error {
	bin := "tc"
	if _, err := os.Stat("/usr/sbin/tc"); err == nil {
		bin = "/usr/sbin/tc"
	}
	out, err := exec.Command(bin, append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// requireRoot skips t unless the harness can create namespaces.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the chaos harness creates network namespaces, veth pairs and tmpfs mounts: run it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if _, err := os.Stat("/usr/sbin/ip"); err != nil {
			t.Skip("the chaos harness needs iproute2 (ip): install it")
		}
	}
}

// Sweep removes what a killed run left behind: its processes (found
// through its namespaces), namespaces, links and tmpfs mounts. Only runs
// whose process is gone are touched, so a run going on beside this one
// keeps its network.
func Sweep(t testing.TB) {
	t.Helper()
	// Processes first (nodes and agents), found by the run's name in
	// their command line (data directories and agent configurations are
	// named for the run).
	killRunProcesses(t)
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		out, err = exec.Command("/usr/sbin/ip", "netns", "list").Output()
	}
	if err != nil {
		t.Logf("sweep: ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := runPID(name)
		if !ok || alive(pid) {
			continue
		}
		killNamespacePIDs(name)
		if err := ip("netns", "del", name); err != nil {
			t.Logf("sweep: %v", err)
		} else {
			t.Logf("sweep: removed namespace %s of a run that is gone", name)
		}
	}
	// Links in this namespace named for a dead run (their peer went with
	// the namespace, normally; a half-made network may leave one).
	if links, err := exec.Command("/usr/sbin/ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(links), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if !strings.HasPrefix(name, linkPrefix) {
				continue
			}
			pidPart := strings.TrimPrefix(name, linkPrefix)
			if i := strings.IndexFunc(pidPart, func(r rune) bool { return r < '0' || r > '9' }); i > 0 {
				pidPart = pidPart[:i]
			}
			if pid, err := strconv.Atoi(pidPart); err == nil && !alive(pid) {
				if err := ip("link", "del", name); err == nil {
					t.Logf("sweep: removed link %s of a run that is gone", name)
				}
			}
		}
	}
	// tmpfs mounts under a directory named for a dead run.
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[2] != "tmpfs" || !strings.Contains(f[1], nsPrefix) {
				continue
			}
			seg := f[1][strings.Index(f[1], nsPrefix):]
			seg, _, _ = strings.Cut(seg, "/")
			if pid, ok := runPID(seg); ok && !alive(pid) {
				if err := syscall.Unmount(f[1], syscall.MNT_DETACH); err == nil {
					t.Logf("sweep: unmounted %s of a run that is gone", f[1])
					os.Remove(f[1])
				}
			}
		}
	}
}

// runPID parses the process ID out of a name made by this harness:
// nsPrefix + pid [+ "-" + suffix].
func runPID(name string) (int, bool) {
	if !strings.HasPrefix(name, nsPrefix) {
		return 0, false
	}
	s := strings.TrimPrefix(name, nsPrefix)
	s, _, _ = strings.Cut(s, "-")
	pid, err := strconv.Atoi(s)
	return pid, err == nil
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// killNamespacePIDs SIGKILLs the processes left in a dead run's
// namespace (certvaultd processes whose harness was killed).
func killNamespacePIDs(ns string) {
	out, err := exec.Command("/usr/sbin/ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// NewNetwork builds the network for nodes (IDs node1, node2 …) and tears
// it down when the test ends, on every path.
func NewNetwork(t testing.TB, nodes int) *Network {
	t.Helper()
	requireRoot(t)
	Sweep(t)
	pid := os.Getpid()
	nw := &Network{run: fmt.Sprintf("%s%d", nsPrefix, pid), t: t, blocked: map[[2]int]bool{}, slowed: map[int]bool{}}
	for i := 1; i <= nodes; i++ {
		nw.nodes = append(nw.nodes, fmt.Sprintf("node%d", i))
	}
	// A /24 no route of this namespace knows yet (a run beside this one
	// has its own).
	nw.subnet = -1
	for k := range 200 {
		s := 20 + (pid+k)%200
		out, err := exec.Command("/usr/sbin/ip", "-4", "route", "show", fmt.Sprintf("%s%d.0/24", subnetBase, s)).Output()
		if err == nil && len(bytes.TrimSpace(out)) == 0 {
			nw.subnet = s
			break
		}
	}
	if nw.subnet < 0 {
		t.Fatalf("no free /24 in %s0.0/16 for the chaos network", subnetBase)
	}
	t.Cleanup(nw.teardown)

	sw := nw.run + "-sw"
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatalf("build the chaos network: %v", err)
		}
	}
	must(ip("netns", "add", sw))
	must(ip("-n", sw, "link", "add", "br0", "type", "bridge"))
	must(ip("-n", sw, "link", "set", "br0", "up"))
	must(ip("-n", sw, "link", "set", "lo", "up"))
	for i := 1; i <= nodes; i++ {
		ns := nw.NS(i)
		must(ip("netns", "add", ns))
		must(ip("-n", ns, "link", "set", "lo", "up"))
		port := fmt.Sprintf("%s%db%d", linkPrefix, pid, i)
		must(ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns))
		must(ip("link", "set", port, "netns", sw))
		must(ip("-n", sw, "link", "set", port, "master", "br0"))
		must(ip("-n", sw, "link", "set", port, "up"))
		must(ip("-n", ns, "addr", "add", fmt.Sprintf("%s/24", nw.Addr(i)), "dev", "eth0"))
		must(ip("-n", ns, "link", "set", "eth0", "up"))
	}
	host := fmt.Sprintf("%s%dh", linkPrefix, pid)
	port := fmt.Sprintf("%s%dbh", linkPrefix, pid)
	must(ip("link", "add", host, "type", "veth", "peer", "name", port, "netns", sw))
	must(ip("-n", sw, "link", "set", port, "master", "br0"))
	must(ip("-n", sw, "link", "set", port, "up"))
	must(ip("addr", "add", fmt.Sprintf("%s%d.%d/24", subnetBase, nw.subnet, hostOctet), "dev", host))
	must(ip("link", "set", host, "up"))

	// netem, where the kernel has it.
	if err := tc(nw.NS(1), "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms"); err != nil {
		nw.NetemNote = fmt.Sprintf("tc netem is not available here (%v): the slow-link nemesis is skipped", err)
	} else if err := tc(nw.NS(1), "qdisc", "del", "dev", "eth0", "root"); err != nil {
		nw.NetemNote = fmt.Sprintf("tc netem could not be removed again (%v): the slow-link nemesis is skipped", err)
	}
	return nw
}

// NS is the namespace of node i (1-based).
func (nw *Network) NS(i int) string { return fmt.Sprintf("%s-n%d", nw.run, i) }

// Addr is the address of node i (1-based).
func (nw *Network) Addr(i int) string { return fmt.Sprintf("%s%d.%d", subnetBase, nw.subnet, i) }

// Dir is a directory name unique to this run, for mounts that Sweep can
// tell apart.
func (nw *Network) Dir() string { return nw.run }

// index maps a node ID to its octet.
func (nw *Network) index(id string) int {
	for i, n := range nw.nodes {
		if n == id {
			return i + 1
		}
	}
	panic("chaos: unknown node " + id)
}

// Command is the testcluster.Options.Command hook: run node id in its
// namespace.
func (nw *Network) Command(id string) []string {
	bin := "/usr/sbin/ip"
	if _, err := os.Stat(bin); err != nil {
		bin = "ip"
	}
	return []string{bin, "netns", "exec", nw.NS(nw.index(id))}
}

// Addrs is the testcluster.Options.Addrs hook.
func (nw *Network) Addrs(id string) (api, raft string) {
	a := nw.Addr(nw.index(id))
	return fmt.Sprintf("%s:%d", a, apiPort), fmt.Sprintf("%s:%d", a, raftPort)
}

// Cut makes the packets from node from to node to vanish (one direction).
func (nw *Network) Cut(from, to string) error {
	f, d := nw.index(from), nw.index(to)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if err := ip("-n", nw.NS(f), "neigh", "replace", nw.Addr(d), "lladdr", bogusMAC, "dev", "eth0", "nud", "permanent"); err != nil {
		return fmt.Errorf("cut %s -> %s: %w", from, to, err)
	}
	nw.blocked[[2]int{f, d}] = true
	return nil
}

// Heal removes every cut and every slowed link.
func (nw *Network) Heal() error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var errs []error
	keys := make([][2]int, 0, len(nw.blocked))
	for k := range nw.blocked {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]*100+keys[i][1] < keys[j][0]*100+keys[j][1] })
	for _, k := range keys {
		if err := ip("-n", nw.NS(k[0]), "neigh", "del", nw.Addr(k[1]), "dev", "eth0"); err != nil {
			errs = append(errs, fmt.Errorf("heal %d -> %d: %w", k[0], k[1], err))
			continue
		}
		delete(nw.blocked, k)
	}
	for i := range nw.slowed {
		if err := tc(nw.NS(i), "qdisc", "del", "dev", "eth0", "root"); err != nil {
			errs = append(errs, fmt.Errorf("unslow node%d: %w", i, err))
			continue
		}
		delete(nw.slowed, i)
	}
	return errors.Join(errs...)
}

// Slow adds delay and loss to node id's link with netem (both directions
// of its traffic leave through it or arrive on it; the delay is on what
// it sends).
func (nw *Network) Slow(id string, delay time.Duration, lossPct int) error {
	i := nw.index(id)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if err := tc(nw.NS(i), "qdisc", "replace", "dev", "eth0", "root", "netem",
		"delay", fmt.Sprintf("%dms", delay.Milliseconds()), fmt.Sprintf("%dms", delay.Milliseconds()/4),
		"loss", fmt.Sprintf("%d%%", lossPct)); err != nil {
		return fmt.Errorf("slow %s: %w", id, err)
	}
	nw.slowed[i] = true
	return nil
}

// teardown deletes the namespaces (which takes their links along) and the
// harness's own veth.
func (nw *Network) teardown() {
	for i := range nw.nodes {
		ns := nw.NS(i + 1)
		killNamespacePIDs(ns)
		if err := ip("netns", "del", ns); err != nil {
			nw.t.Errorf("tear down the chaos network: %v", err)
		}
	}
	if err := ip("netns", "del", nw.run+"-sw"); err != nil {
		nw.t.Errorf("tear down the chaos network: %v", err)
	}
	// The host end goes with its peer; make sure.
	host := fmt.Sprintf("%s%dh", linkPrefix, os.Getpid())
	if _, err := os.Stat(filepath.Join("/sys/class/net", host)); err == nil {
		// The kernel may remove it with its peer between the look and
		// the delete: gone is what the delete wanted.
		if err := ip("link", "del", host); err != nil {
			if _, serr := os.Stat(filepath.Join("/sys/class/net", host)); serr == nil {
				nw.t.Errorf("tear down the chaos network: %v", err)
			}
		}
	}
}

// killRunProcesses SIGKILLs every process whose command line names a run
// (nsPrefix + pid + "-") whose own process is gone.
func killRunProcesses(t testing.TB) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmdline)
		i := strings.Index(s, nsPrefix)
		if i < 0 {
			continue
		}
		run, ok := runPID(strings.FieldsFunc(s[i:], func(r rune) bool { return r == 0 || r == '/' })[0])
		if !ok || alive(run) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			t.Logf("sweep: killed process %d of a run that is gone", pid)
		}
	}
}
