package shadowrun

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
)

// The generated world: accounts with roles, each role's instances in one
// VPC with its endpoint and NAT gateways, the app's trust (a central egress
// prefix and a shared endpoint), thieves. Addresses come from the
// documentation ranges, which lockpolicy treats as public.
const (
	region         = "eu-west-1"
	centralEgress  = "192.0.2.128/28"
	centralIP      = "192.0.2.130"
	sharedEndpoint = "vpce-0bbbb2222cccc3333"
	strayEndpoint  = "vpce-0999988887777666" // in nobody's inventory
	thiefIP        = "203.0.113.66"
)

// kind is a category of call whose verdict under each proposal is known
// by construction.
type kind int

const (
	ownPublic       kind = iota // the instance from its own public IPv4 (public subnet)
	viaNAT                      // the instance through one of its VPC's NAT gateways (private subnet)
	ownEndpoint                 // the instance through its VPC's endpoint
	sharedVPCE                  // the instance through the shared endpoint
	centralEgressed             // the instance through the central egress (trusted prefix)
	thiefInternet               // stolen credentials over the internet
	thiefNeighbour              // stolen credentials through the instance's endpoint, from another host
	strayVPCE                   // the instance's credentials through an endpoint nobody mapped
	unknownInstance             // an instance the inventory does not know, over the internet
	numKinds
)

var kindNames = [numKinds]string{"own public IP", "via NAT", "own endpoint", "shared endpoint", "central egress",
	"thief on the internet", "thief next door", "stray endpoint", "unknown instance"}

func (k kind) String() string { return kindNames[k] }

// instance is one generated instance.
type instance struct {
	id, account, role, roleARN string
	vpc, vpce, private         string
	public                     string // "" for a private-subnet instance
	nat                        []string
}

// inventory is what the detector's inventory says of the instance.
func (in instance) inventory() detect.Instance {
	d := detect.Instance{ID: in.id, VpcID: in.vpc, Region: region, PrimaryPrivateIP: netip.MustParseAddr(in.private),
		PrivateIPs: []netip.Addr{netip.MustParseAddr(in.private)}, VPCEndpointIDs: []string{in.vpce}}
	if in.public != "" {
		d.PublicIPs = []netip.Addr{netip.MustParseAddr(in.public)}
	}
	for _, n := range in.nat {
		d.NATIPs = append(d.NATIPs, netip.MustParseAddr(n))
	}
	return d
}

// world is the generated instances.
type world struct {
	instances []instance
}

// gcall is one generated call.
type gcall struct {
	rec   cloudtrail.Record
	in    instance // the instance whose credentials made it
	kind  kind
	inv   detect.Instance
	found bool
}

// hexID renders n as 17 lowercase hex digits.
func hexID(n uint64) string { return fmt.Sprintf("%017x", n) }

// newWorld builds accounts × roles × instances; every third instance is in
// a private subnet (no public IPv4).
func newWorld(nAccounts, nRoles, nInstances int) *world {
	w := &world{}
	k := 0
	for a := range nAccounts {
		account := fmt.Sprintf("%012d", 111122223333+a*111111111111)
		for r := range nRoles {
			role := fmt.Sprintf("app-%d-role", r)
			vpcN := uint64(a*100 + r + 1)
			nat := []string{fmt.Sprintf("192.0.2.%d", 2*(a*nRoles+r)+1), fmt.Sprintf("192.0.2.%d", 2*(a*nRoles+r)+2)}
			for i := range nInstances {
				k++
				in := instance{
					id: "i-" + hexID(uint64(0xa00000+k)), account: account, role: role,
					roleARN: "arn:aws:iam::" + account + ":role/" + role,
					vpc:     "vpc-" + hexID(0xc00000+vpcN), vpce: "vpce-" + hexID(0xe00000+vpcN),
					private: fmt.Sprintf("10.%d.%d.%d", a, r, 10+i), nat: nat,
				}
				if k%3 != 0 {
					in.public = fmt.Sprintf("198.51.100.%d", k)
				}
				w.instances = append(w.instances, in)
			}
		}
	}
	return w
}

// identity is the userIdentity of a session of in's role named session.
func (in instance) identity(session string) cloudtrailtest.Identity {
	return cloudtrailtest.Identity{
		Type: "AssumedRole", PrincipalID: "AROAYEXAMPLEROLEID01:" + session,
		ARN:       "arn:aws:sts::" + in.account + ":assumed-role/" + in.role + "/" + session,
		AccountID: in.account, AccessKeyID: "ASIAYEXAMPLEINSTKEY1",
		IssuerType: "Role", IssuerPrincipal: "AROAYEXAMPLEROLEID01", IssuerARN: in.roleARN, IssuerUserName: in.role,
		EC2RoleDelivery: "2.0", CreationDate: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC),
	}
}

// call builds one call of kind k with in's credentials, the n-th of the
// traffic.
func (in instance) call(t testing.TB, k kind, n int, rng *rand.Rand) gcall {
	t.Helper()
	session, src, vpce := in.id, "", ""
	switch k {
	case ownPublic:
		src = in.public
	case viaNAT:
		src = in.nat[rng.IntN(len(in.nat))]
	case ownEndpoint:
		src, vpce = in.private, in.vpce
	case sharedVPCE:
		src, vpce = in.private, sharedEndpoint
	case centralEgressed:
		src = centralIP
	case thiefInternet:
		src = thiefIP
	case thiefNeighbour:
		src, vpce = in.private[:len(in.private)-2]+"99", in.vpce
	case strayVPCE:
		src, vpce = in.private, strayEndpoint
	case unknownInstance:
		session, src = "i-"+hexID(0xdead0000+uint64(n)), thiefIP
	}
	raw := cloudtrailtest.Event{
		Identity: in.identity(session), Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second),
		EventSource: "ec2.amazonaws.com", EventName: "DescribeInstances", Region: region, SourceIP: src, VPCEndpointID: vpce,
		EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), RecipientAccount: in.account, Management: true, ReadOnly: true,
	}.JSON()
	rec, err := cloudtrail.ParseRecord(raw)
	if err != nil {
		t.Fatalf("ParseRecord: %v", err)
	}
	c := gcall{rec: rec, in: in, kind: k}
	if k != unknownInstance {
		c.inv, c.found = in.inventory(), true
	}
	return c
}

// traffic generates n calls of the given kinds (all when none), evenly
// spread over the kinds and the instances, deterministically; a kind an
// instance cannot make (its own public IP without one) becomes viaNAT.
func (w *world) traffic(t testing.TB, n int, seed uint64, kinds ...kind) []gcall {
	t.Helper()
	if len(kinds) == 0 {
		for k := range numKinds {
			kinds = append(kinds, k)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	calls := make([]gcall, 0, n)
	for i := range n {
		in := w.instances[rng.IntN(len(w.instances))]
		k := kinds[rng.IntN(len(kinds))]
		if k == ownPublic && in.public == "" {
			k = viaNAT
		}
		calls = append(calls, in.call(t, k, i, rng))
	}
	return calls
}

// trust is the app's trust of the world.
var trust = lockpolicy.Trust{EgressPrefixes: []string{centralEgress}, SharedVPCEndpoints: []string{sharedEndpoint}}

// scp renders the organisation's SCP for the world.
func scp(t testing.TB, o lockpolicy.SCPOptions) []byte {
	t.Helper()
	doc, err := lockpolicy.SCP(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newRunner builds a Runner or fails the test.
func newRunner(t testing.TB, cfg Config) *Runner {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// flushed flushes r and reads the report line back as review would.
func flushed(t testing.TB, r *Runner) shadow.Summary {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Flush(&buf, time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC), "req-1"); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	s, err := shadow.ReadReports(&buf)
	if err != nil {
		t.Fatalf("ReadReports: %v\n%s", err, buf.String())
	}
	return s
}
