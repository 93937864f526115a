package faults

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netns is a network namespace joined to the test's by a veth pair: the
// host end (hostIf, hostIP) in the test's namespace, the other (nsIf,
// nsIP) inside it, on a /24 of their own.
type netns struct {
	t            *testing.T
	name         string
	hostIf, nsIf string
	subnet       string // the first three octets
	hostIP, nsIP string
}

// newNetns creates a namespace for the test and removes it (and the veth
// pair with it) when the test ends. It skips the test where namespaces
// cannot be made: they need root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and
// iproute2's ip.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: network namespaces need root; TestTargetCutOff covers the cut with a user-space proxy")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: needs iproute2's ip to make network namespaces")
	}
	// Names and a subnet from the process id, so that test binaries
	// running side by side do not collide. The subnet is in 198.18.0.0/15,
	// set aside for network tests (RFC 2544), where no real route lives.
	id := os.Getpid()
	n := &netns{
		t:      t,
		name:   fmt.Sprintf("muster-faults-%d", id),
		hostIf: fmt.Sprintf("mfh%d", id),
		nsIf:   fmt.Sprintf("mfn%d", id),
		subnet: fmt.Sprintf("198.%d.%d", 18+(id>>8)%2, id%256),
	}
	n.hostIP, n.nsIP = n.subnet+".1", n.subnet+".2"
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot make a network namespace here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { n.ip("netns", "delete", n.name) })
	// A kernel without veth pairs, or a sandbox that allows namespaces
	// but not links, cannot run the test either.
	for _, args := range [][]string{
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf, "netns", n.name},
		{"addr", "add", n.hostIP + "/24", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.name, "addr", "add", n.nsIP + "/24", "dev", n.nsIf},
		{"-n", n.name, "link", "set", n.nsIf, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("skipped: cannot join a network namespace by a veth pair here: ip %s: %v: %s",
				strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return n
}

// ip runs ip with args, failing the test if it fails.
func (n *netns) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// linkDown returns a function that takes interface dev down, on whichever
// side of the pair it is.
func (n *netns) linkDown(dev string) func() { return n.setLink(dev, "down") }

// linkUp returns a function that brings interface dev up.
func (n *netns) linkUp(dev string) func() { return n.setLink(dev, "up") }

func (n *netns) setLink(dev, state string) func() {
	return func() {
		if dev == n.nsIf {
			n.ip("-n", n.name, "link", "set", dev, state)
		} else {
			n.ip("link", "set", dev, state)
		}
	}
}

// renumber returns a cut and its heal that change the target's address, as
// a NAT that lost its state or a DHCP lease that moved would: the cut
// removes the address (and the route with it), the heal gives the target a
// new one. The connections made from the old address are dead on both
// sides, with nobody to say so.
func (n *netns) renumber() (cut, heal func()) {
	cut = func() { n.ip("-n", n.name, "addr", "del", n.nsIP+"/24", "dev", n.nsIf) }
	heal = func() {
		n.nsIP = n.subnet + ".3"
		n.ip("-n", n.name, "addr", "add", n.nsIP+"/24", "dev", n.nsIf)
	}
	return cut, heal
}
