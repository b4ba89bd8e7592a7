package shadow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// kind is a category of generated call whose verdict is known by
// construction.
type kind int

const (
	legitPublic      kind = iota // the instance from its own public IP: allowed
	legitEndpoint                // the instance through its VPC's endpoint: allowed
	legitService                 // a service on the instance's behalf: allowed
	legitSibling                 // the credentials of one instance of the role from another's public IP: allowed (cannot tell apart)
	thiefInternet                // from the internet: DenyPublicCallsFromOtherAddresses
	thiefNeighbour               // another host of the VPC through its endpoint: DenyEndpointCallsFromOtherHosts
	thiefForeignVPCE             // through an endpoint of the thief's VPC: three statements
	unmappedEndpoint             // the instance through an endpoint nobody mapped: undetermined
	malformed                    // sourceIPAddress that is neither address nor service: an error
	numKinds
)

// kindWeights makes most traffic legitimate.
var kindWeights = [numKinds]int{legitPublic: 600, legitEndpoint: 250, legitService: 40, legitSibling: 30,
	thiefInternet: 30, thiefNeighbour: 15, thiefForeignVPCE: 15, unmappedEndpoint: 15, malformed: 5}

// denies lists the statements that deny each kind.
var denies = [numKinds][]string{
	thiefInternet:    {lockpolicy.SidDenyPublicCallsFromOtherAddresses},
	thiefNeighbour:   {lockpolicy.SidDenyEndpointCallsFromOtherHosts},
	thiefForeignVPCE: {lockpolicy.SidDenyEndpointCallsFromOtherHosts, lockpolicy.SidDenyEndpointCallsFromOtherVpcs, lockpolicy.SidDenyEndpointCallsFromOutsideTheInstanceVpc},
}

// world is generated traffic: roles with instances, each role's lock, the
// inventory, the endpoint map, and records whose verdicts are known.
type world struct {
	accounts  []string
	policies  map[string]*Policy // role ARN -> its lock
	inventory map[string]Instance
	endpoints map[string]string
	records   [][]byte
	kinds     []kind
	roleOf    []string // role ARN of each record
	accountOf []string
}

type genRole struct {
	account, name, arn, vpc, vpce string
	instances                     []genInstance
}

type genInstance struct{ id, public, private string }

// generate builds n records over accounts × roles, deterministically.
func generate(t testing.TB, n, nAccounts, nRoles int, seed uint64) *world {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &world{policies: map[string]*Policy{}, inventory: map[string]Instance{}, endpoints: map[string]string{}}
	for a := range nAccounts {
		w.accounts = append(w.accounts, fmt.Sprintf("%012d", 111122223333+a*111111111111))
	}
	w.endpoints["vpce-0eeeeeeeeeeeeeeee"] = "vpc-0eeeeeeeeeeeeeeee" // the thieves' VPC
	var roles []genRole
	for r := range nRoles {
		acct := w.accounts[r%nAccounts]
		g := genRole{account: acct, name: fmt.Sprintf("app-%02d-role", r),
			vpc: fmt.Sprintf("vpc-%017x", r+1), vpce: fmt.Sprintf("vpce-%017x", r+1)}
		g.arn = "arn:aws:iam::" + acct + ":role/" + g.name
		w.endpoints[g.vpce] = g.vpc
		var publics []string
		for i := range 1 + r%3 {
			in := genInstance{id: fmt.Sprintf("i-%017x", r*16+i+1), public: fmt.Sprintf("203.0.113.%d", 10+r*4+i),
				private: fmt.Sprintf("10.%d.1.%d", r, 10+i)}
			g.instances = append(g.instances, in)
			publics = append(publics, in.public)
			w.inventory[in.id] = Instance{VPC: g.vpc, PrivateIPv4: in.private, Region: region}
		}
		doc := render(t, lockpolicy.Lock{SourceIPs: publics, VPCs: []string{g.vpc}})
		w.policies[g.arn] = compile(t, doc)
		roles = append(roles, g)
	}
	total := 0
	for _, wgt := range kindWeights {
		total += wgt
	}
	start := time.Date(2024, 5, 14, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ri := rng.IntN(len(roles))
		g := roles[ri]
		in := g.instances[rng.IntN(len(g.instances))]
		k, x := kind(0), rng.IntN(total)
		for x >= kindWeights[k] {
			x -= kindWeights[k]
			k++
		}
		c := call{account: g.account, role: g.name, session: in.id, at: start.Add(time.Duration(i) * time.Second),
			source: []string{"ec2.amazonaws.com", "s3.amazonaws.com", "sts.amazonaws.com"}[i%3],
			name:   []string{"DescribeInstances", "ListBuckets", "GetCallerIdentity"}[i%3]}
		switch k {
		case legitPublic:
			c.src = in.public
		case legitEndpoint:
			c.src, c.vpce = in.private, g.vpce
		case legitService:
			c.src, c.invokedBy = "cloudformation.amazonaws.com", "cloudformation.amazonaws.com"
		case legitSibling:
			c.src = g.instances[(slices.Index(g.instances, in)+1)%len(g.instances)].public
		case thiefInternet:
			c.src = fmt.Sprintf("198.51.100.%d", rng.IntN(250)+1)
		case thiefNeighbour:
			c.src, c.vpce = fmt.Sprintf("10.%d.2.%d", ri, rng.IntN(250)+1), g.vpce
		case thiefForeignVPCE:
			c.src, c.vpce = fmt.Sprintf("10.200.0.%d", rng.IntN(250)+1), "vpce-0eeeeeeeeeeeeeeee"
		case unmappedEndpoint:
			c.src, c.vpce = in.private, "vpce-0999999999999999a"
		case malformed:
			c.src = "not an address"
		}
		w.records = append(w.records, c.json())
		w.kinds = append(w.kinds, k)
		w.roleOf = append(w.roleOf, g.arn)
		w.accountOf = append(w.accountOf, g.account)
	}
	return w
}

// shadow runs one record through the pipeline a caller builds.
func (w *world) shadow(rec *cloudtrail.Record, report *Report) {
	req, err := FromRecord(rec, w.inventory[InstanceID(rec)], Options{EndpointVPCs: w.endpoints})
	if err != nil {
		report.AddError(rec, err)
		return
	}
	p := w.policies[rec.UserIdentity.SessionContext.SessionIssuer.ARN]
	if p == nil {
		report.AddError(rec, fmt.Errorf("no proposed policy for %s", rec.UserIdentity.SessionContext.SessionIssuer.ARN))
		return
	}
	report.Add(rec, p.Evaluate(&req))
}

// expected computes the report's numbers from the kinds alone.
func (w *world) expected(maxRoles int) (s Summary) {
	s.MaxRoles = maxRoles
	type stats struct {
		calls, denied, undetermined int64
		sids                        map[string]int64
		undetSids                   map[string]int64
	}
	per := map[[2]string]*stats{}
	var order [][2]string
	other := &stats{sids: map[string]int64{}, undetSids: map[string]int64{}}
	for i, k := range w.kinds {
		if k == malformed {
			s.Errors++
			continue
		}
		key := [2]string{w.accountOf[i], w.roleOf[i]}
		st := per[key]
		if st == nil {
			if len(order) < maxRoles {
				st = &stats{sids: map[string]int64{}, undetSids: map[string]int64{}}
				per[key] = st
				order = append(order, key)
			} else {
				st = other
			}
		}
		st.calls++
		s.Calls++
		switch {
		case len(denies[k]) > 0:
			st.denied++
			s.WouldDeny++
			for _, sid := range denies[k] {
				st.sids[sid]++
			}
		case k == unmappedEndpoint:
			st.undetermined++
			s.Undetermined++
			st.undetSids[lockpolicy.SidDenyEndpointCallsFromOtherVpcs]++
			st.undetSids[lockpolicy.SidDenyEndpointCallsFromOutsideTheInstanceVpc]++
		}
	}
	role := func(name string, st *stats) RoleSummary {
		rs := RoleSummary{Role: name, Calls: st.calls, WouldDeny: st.denied, Undetermined: st.undetermined}
		names := map[string]bool{}
		for sid := range st.sids {
			names[sid] = true
		}
		for sid := range st.undetSids {
			names[sid] = true
		}
		for _, sid := range slices.Sorted(maps.Keys(names)) {
			rs.Statements = append(rs.Statements, StatementSummary{Sid: sid, WouldDeny: st.sids[sid], Undetermined: st.undetSids[sid]})
		}
		return rs
	}
	slices.SortFunc(order, func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
	for _, key := range order {
		if n := len(s.Accounts); n == 0 || s.Accounts[n-1].Account != key[0] {
			s.Accounts = append(s.Accounts, AccountSummary{Account: key[0]})
		}
		a := &s.Accounts[len(s.Accounts)-1]
		rs := role(key[1], per[key])
		a.Calls += rs.Calls
		a.WouldDeny += rs.WouldDeny
		a.Undetermined += rs.Undetermined
		a.Roles = append(a.Roles, rs)
	}
	if other.calls > 0 {
		o := role("", other)
		s.Other = &o
	}
	return s
}

// withoutExamples returns a copy of s without what the expected summary
// cannot know.
func withoutExamples(t *testing.T, s Summary) Summary {
	t.Helper()
	var c Summary
	if err := json.Unmarshal(jsonOf(t, s), &c); err != nil {
		t.Fatal(err)
	}
	s = c
	s.ErrorExamples = nil
	strip := func(rs *RoleSummary) {
		rs.UndeterminedExamples = nil
		for i := range rs.Statements {
			rs.Statements[i].Examples = nil
		}
	}
	for i := range s.Accounts {
		for j := range s.Accounts[i].Roles {
			strip(&s.Accounts[i].Roles[j])
		}
	}
	if s.Other != nil {
		strip(s.Other)
	}
	return s
}

// TestGeneratedTraffic feeds 10,000 records over 3 accounts and 20 roles,
// of which a known set comes from outside each role's lock, and checks
// every count of the report exactly; then the bounds and the determinism
// of the report.
func TestGeneratedTraffic(t *testing.T) {
	w := generate(t, 10000, 3, 20, 42)
	recs := make([]cloudtrail.Record, len(w.records))
	for i, raw := range w.records {
		r, err := cloudtrail.ParseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = r
	}
	var counts [numKinds]int
	for _, k := range w.kinds {
		counts[k]++
	}
	for k, n := range counts {
		if n == 0 {
			t.Fatalf("kind %d never generated: the test would prove nothing about it", k)
		}
	}

	t.Run("every count equals the known numbers", func(t *testing.T) {
		report := NewReport(ReportOptions{})
		for i := range recs {
			w.shadow(&recs[i], report)
		}
		got := report.Summary()
		if len(got.Accounts) != 3 || got.Other != nil {
			t.Fatalf("%d accounts, other %v", len(got.Accounts), got.Other)
		}
		roles := 0
		for _, a := range got.Accounts {
			roles += len(a.Roles)
		}
		if roles != 20 {
			t.Fatalf("%d roles, want 20", roles)
		}
		want := w.expected(DefaultMaxRoles)
		if g, e := jsonOf(t, withoutExamples(t, got)), jsonOf(t, want); !bytes.Equal(g, e) {
			t.Errorf("summary\n got %s\nwant %s", g, e)
		}
		if got.WouldDeny != int64(counts[thiefInternet]+counts[thiefNeighbour]+counts[thiefForeignVPCE]) ||
			got.Undetermined != int64(counts[unmappedEndpoint]) || got.Errors != int64(counts[malformed]) {
			t.Errorf("totals %d/%d/%d, kinds %v", got.WouldDeny, got.Undetermined, got.Errors, counts)
		}
		t.Logf("%d calls: %d would be denied, %d undetermined, %d errors", got.Calls, got.WouldDeny, got.Undetermined, got.Errors)
		checkExamples(t, got)
	})

	t.Run("pairs beyond the cap are counted in the other bucket", func(t *testing.T) {
		report := NewReport(ReportOptions{MaxRoles: 5})
		for i := range recs {
			w.shadow(&recs[i], report)
		}
		got := report.Summary()
		want := w.expected(5)
		if g, e := jsonOf(t, withoutExamples(t, got)), jsonOf(t, want); !bytes.Equal(g, e) {
			t.Errorf("summary\n got %s\nwant %s", g, e)
		}
		if got.Other == nil || got.Other.Calls == 0 {
			t.Fatal("no other bucket")
		}
		var sum int64
		for _, a := range got.Accounts {
			sum += a.Calls
		}
		if sum+got.Other.Calls != got.Calls {
			t.Errorf("%d + %d != %d calls", sum, got.Other.Calls, got.Calls)
		}
	})

	t.Run("the report does not depend on the order or concurrency of Add", func(t *testing.T) {
		seq := NewReport(ReportOptions{})
		for i := range recs {
			w.shadow(&recs[i], seq)
		}
		order := rand.New(rand.NewPCG(7, 7)).Perm(len(recs))
		par := NewReport(ReportOptions{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for j := g; j < len(order); j += 4 {
					w.shadow(&recs[order[j]], par)
				}
			})
		}
		wg.Wait()
		a, err := json.Marshal(seq)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(par)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Error("the same records in another order give another JSON")
		}
		var ma, mb bytes.Buffer
		if err := seq.WriteMarkdown(&ma); err != nil {
			t.Fatal(err)
		}
		if err := par.WriteMarkdown(&mb); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ma.Bytes(), mb.Bytes()) {
			t.Error("the same records in another order give another Markdown")
		}
	})
}

// checkExamples checks the examples' bounds and order.
func checkExamples(t *testing.T, s Summary) {
	t.Helper()
	for _, a := range s.Accounts {
		for _, r := range a.Roles {
			for _, st := range r.Statements {
				if want := min(int(st.WouldDeny), DefaultMaxExamples); len(st.Examples) != want {
					t.Errorf("%s %s: %d examples, want %d", r.Role, st.Sid, len(st.Examples), want)
				}
				if !slices.IsSortedFunc(st.Examples, compareExamples) {
					t.Errorf("%s %s: examples out of order", r.Role, st.Sid)
				}
				for _, e := range st.Examples {
					if e.InstanceID == "" || e.EventTime == "" || e.SourceIPAddress == "" {
						t.Errorf("%s %s: incomplete example %+v", r.Role, st.Sid, e)
					}
				}
			}
			if want := min(int(r.Undetermined), DefaultMaxExamples); len(r.UndeterminedExamples) != want {
				t.Errorf("%s: %d undetermined examples, want %d", r.Role, len(r.UndeterminedExamples), want)
			}
			for _, e := range r.UndeterminedExamples {
				if e.Reason == "" || e.VPCEndpointID == "" {
					t.Errorf("%s: undetermined example without reason or endpoint: %+v", r.Role, e)
				}
			}
		}
	}
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
