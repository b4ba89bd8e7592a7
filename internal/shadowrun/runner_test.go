package shadowrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
)

// proposal is a row of the generated-traffic tests: what is shadowed and
// what it does to each kind of call, by construction.
type proposal struct {
	name    string
	mode    lockpolicy.Mode // a lock mode, or "" for the SCP
	trusted bool            // the lock carries the world's trust
	scp     lockpolicy.SCPOptions
}

func (p proposal) config(t testing.TB) Config {
	if p.mode == "" {
		return Config{Policy: scp(t, p.scp)}
	}
	c := Config{Mode: p.mode}
	if p.trusted {
		c.Trust = trust
	}
	return c
}

// expect is the verdict p gives c, worked out from the lock's and the
// SCP's statements (lockpolicy's documentation), not from the evaluator.
func (p proposal) expect(c gcall) (shadow.Decision, []string) {
	src, internet := c.rec.SourceIPAddress, c.rec.VPCEndpointID == ""
	inEgress := netip.MustParsePrefix(centralEgress).Contains(netip.MustParseAddr(src))
	if p.mode == "" { // the SCP
		exempt := p.scp.ExemptRoleTag != "" // tags are unknown: what it would deny is undetermined
		deny := func(sid string) (shadow.Decision, []string) {
			if exempt {
				return shadow.Undetermined, nil
			}
			return shadow.Denied, []string{sid}
		}
		switch {
		case internet && (!p.scp.RestrictInternet || inEgress):
			return shadow.Allowed, nil
		case internet:
			return deny(lockpolicy.SidSCPDenyPublicCallsFromOtherAddresses)
		case c.kind == thiefNeighbour:
			return deny(lockpolicy.SidSCPDenyEndpointCallsFromOtherHosts)
		case c.kind == strayVPCE:
			return shadow.Undetermined, nil
		}
		return shadow.Allowed, nil // own and shared endpoints
	}
	if !c.found {
		return shadow.Undetermined, nil
	}
	if internet {
		var admitted []string
		switch p.mode {
		case lockpolicy.ModeInstancePublicIP, lockpolicy.ModeElasticIP:
			if c.in.public != "" {
				admitted = append(admitted, c.in.public)
			}
		case lockpolicy.ModeNATEgress:
			admitted = append(admitted, c.in.nat...)
		}
		if slices.Contains(admitted, src) || p.trusted && inEgress {
			return shadow.Allowed, nil
		}
		if len(admitted) == 0 && !p.trusted {
			return shadow.Denied, []string{lockpolicy.SidDenyPublicCallsFromAnyAddress}
		}
		return shadow.Denied, []string{lockpolicy.SidDenyPublicCallsFromOtherAddresses}
	}
	switch c.kind {
	case thiefNeighbour:
		return shadow.Denied, []string{lockpolicy.SidDenyEndpointCallsFromOtherHosts}
	case strayVPCE:
		return shadow.Undetermined, nil
	case sharedVPCE:
		if !p.trusted { // an endpoint the lock does not list, in a VPC nobody mapped
			return shadow.Undetermined, nil
		}
	}
	return shadow.Allowed, nil
}

// counts is what a report should say of one role.
type counts struct {
	calls, denied, undetermined int64
	bySid                       map[string]int64
}

// expected aggregates p's expected verdicts over calls per role ARN.
func (p proposal) expected(calls []gcall) (total counts, roles map[string]*counts) {
	roles = map[string]*counts{}
	total.bySid = map[string]int64{}
	for _, c := range calls {
		rc := roles[c.in.roleARN]
		if rc == nil {
			rc = &counts{bySid: map[string]int64{}}
			roles[c.in.roleARN] = rc
		}
		d, sids := p.expect(c)
		rc.calls++
		total.calls++
		switch d {
		case shadow.Denied:
			rc.denied++
			total.denied++
		case shadow.Undetermined:
			rc.undetermined++
			total.undetermined++
		}
		for _, s := range sids {
			rc.bySid[s]++
			total.bySid[s]++
		}
	}
	return total, roles
}

// got reads the same aggregates out of a summary.
func got(s shadow.Summary) (total counts, roles map[string]*counts) {
	roles = map[string]*counts{}
	total = counts{calls: s.Calls, denied: s.WouldDeny, undetermined: s.Undetermined, bySid: map[string]int64{}}
	for _, a := range s.Accounts {
		for _, r := range a.Roles {
			rc := &counts{calls: r.Calls, denied: r.WouldDeny, undetermined: r.Undetermined, bySid: map[string]int64{}}
			for _, st := range r.Statements {
				if st.WouldDeny > 0 {
					rc.bySid[st.Sid] = st.WouldDeny
					total.bySid[st.Sid] += st.WouldDeny
				}
			}
			roles[r.Role] = rc
		}
	}
	return total, roles
}

var proposals = []proposal{
	{name: "instance-public-ip", mode: lockpolicy.ModeInstancePublicIP},
	{name: "instance-public-ip with the app's trust", mode: lockpolicy.ModeInstancePublicIP, trusted: true},
	{name: "elastic-ip with the app's trust", mode: lockpolicy.ModeElasticIP, trusted: true},
	{name: "nat-egress", mode: lockpolicy.ModeNATEgress},
	{name: "nat-egress with the app's trust", mode: lockpolicy.ModeNATEgress, trusted: true},
	{name: "vpc-endpoints-only", mode: lockpolicy.ModeVPCEndpointsOnly},
	{name: "vpc-endpoints-only with the app's trust", mode: lockpolicy.ModeVPCEndpointsOnly, trusted: true},
	{name: "the SCP", scp: lockpolicy.SCPOptions{Trust: lockpolicy.Trust{SharedVPCEndpoints: []string{sharedEndpoint}}}},
	{name: "the SCP restricting the internet", scp: lockpolicy.SCPOptions{Trust: trust, RestrictInternet: true}},
	{name: "the SCP restricting the internet with a tag exemption", scp: lockpolicy.SCPOptions{Trust: trust, RestrictInternet: true,
		ExemptRoleTag: "defenders-exempt"}},
}

func TestShadowOfEveryProposalOverGeneratedTraffic(t *testing.T) {
	w := newWorld(2, 3, 3)
	calls := w.traffic(t, 3000, 1)
	for _, p := range proposals {
		t.Run(p.name+" counts exactly the calls it would deny", func(t *testing.T) {
			r := newRunner(t, p.config(t))
			for i := range calls {
				r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
			}
			s := flushed(t, r)
			wantTotal, wantRoles := p.expected(calls)
			gotTotal, gotRoles := got(s)
			if s.Errors != 0 {
				t.Errorf("%d records could not be evaluated: %+v", s.Errors, s.ErrorExamples)
			}
			if !reflect.DeepEqual(gotTotal, wantTotal) {
				t.Errorf("totals:\n got %+v\nwant %+v", gotTotal, wantTotal)
			}
			for role, want := range wantRoles {
				if g := gotRoles[role]; g == nil || !reflect.DeepEqual(*g, *want) {
					t.Errorf("role %s:\n got %+v\nwant %+v", role, g, *want)
				}
			}
			if len(gotRoles) != len(wantRoles) {
				t.Errorf("%d roles reported, want %d", len(gotRoles), len(wantRoles))
			}
			if wantTotal.denied == 0 && wantTotal.undetermined == 0 {
				t.Errorf("the row proves nothing: no call would be denied or is undetermined")
			}
		})
	}
}

// TestTheRolloutQuestions are the questions an operator asks before
// enforcing, with exact answers.
func TestTheRolloutQuestions(t *testing.T) {
	w := newWorld(1, 2, 3) // 6 instances: 4 in public subnets, 2 in private ones
	public := func(in instance) bool { return in.public != "" }
	private := func(in instance) bool { return in.public == "" }
	tests := []struct {
		name      string
		cfg       Config
		instances func(instance) bool
		kind      kind
		wantDeny  int64
		wantSid   string
	}{
		{name: "nat-egress over instances that call from their public IPv4: every call would be denied",
			cfg: Config{Mode: lockpolicy.ModeNATEgress}, instances: public, kind: ownPublic,
			wantDeny: 300, wantSid: lockpolicy.SidDenyPublicCallsFromOtherAddresses},
		{name: "nat-egress over instances that call through their NAT gateways: none",
			cfg: Config{Mode: lockpolicy.ModeNATEgress}, instances: private, kind: viaNAT},
		{name: "vpc-endpoints-only over internet calls from the instances: every call would be denied",
			cfg: Config{Mode: lockpolicy.ModeVPCEndpointsOnly}, instances: public, kind: ownPublic,
			wantDeny: 300, wantSid: lockpolicy.SidDenyPublicCallsFromAnyAddress},
		{name: "vpc-endpoints-only with a trusted egress over calls through it: none",
			cfg: Config{Mode: lockpolicy.ModeVPCEndpointsOnly, Trust: trust}, instances: public, kind: centralEgressed},
		{name: "vpc-endpoints-only over calls through the instances' own endpoints: none",
			cfg: Config{Mode: lockpolicy.ModeVPCEndpointsOnly}, kind: ownEndpoint},
		{name: "instance-public-ip over calls from the instance's own address: none",
			cfg: Config{Mode: lockpolicy.ModeInstancePublicIP}, instances: public, kind: ownPublic},
		{name: "instance-public-ip over private-subnet instances calling through NAT: every call would be denied",
			cfg: Config{Mode: lockpolicy.ModeInstancePublicIP}, instances: private, kind: viaNAT,
			wantDeny: 300, wantSid: lockpolicy.SidDenyPublicCallsFromAnyAddress},
		{name: "elastic-ip over stolen credentials on the internet: every call would be denied",
			cfg: Config{Mode: lockpolicy.ModeElasticIP}, instances: public, kind: thiefInternet,
			wantDeny: 300, wantSid: lockpolicy.SidDenyPublicCallsFromOtherAddresses},
		{name: "the SCP over internet calls: none (it leaves them to the lock)",
			cfg: Config{Policy: scp(t, lockpolicy.SCPOptions{})}, kind: thiefInternet},
		{name: "the SCP over another host using the credentials through the endpoint: every call would be denied",
			cfg: Config{Policy: scp(t, lockpolicy.SCPOptions{})}, kind: thiefNeighbour,
			wantDeny: 300, wantSid: lockpolicy.SidSCPDenyEndpointCallsFromOtherHosts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &world{}
			for _, in := range w.instances {
				if tc.instances == nil || tc.instances(in) {
					sub.instances = append(sub.instances, in)
				}
			}
			calls := sub.traffic(t, 300, 2, tc.kind)
			r := newRunner(t, tc.cfg)
			for i := range calls {
				r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
			}
			s := flushed(t, r)
			if s.Calls != 300 || s.WouldDeny != tc.wantDeny || s.Undetermined != 0 || s.Errors != 0 {
				t.Fatalf("calls %d, would deny %d, undetermined %d, errors %d; want 300, %d, 0, 0",
					s.Calls, s.WouldDeny, s.Undetermined, s.Errors, tc.wantDeny)
			}
			if tc.wantDeny == 0 {
				return
			}
			var bySid int64
			for _, a := range s.Accounts {
				for _, rs := range a.Roles {
					for _, st := range rs.Statements {
						if st.Sid != tc.wantSid {
							t.Errorf("role %s: statement %s denies %d calls; want only %s", rs.Role, st.Sid, st.WouldDeny, tc.wantSid)
						}
						bySid += st.WouldDeny
						if len(st.Examples) == 0 {
							t.Errorf("role %s: no example of what %s would deny", rs.Role, st.Sid)
						}
					}
				}
			}
			if bySid != tc.wantDeny {
				t.Errorf("%s denies %d calls, want %d", tc.wantSid, bySid, tc.wantDeny)
			}
		})
	}
}

func TestAnInstanceTheInventoryDoesNotKnow(t *testing.T) {
	w := newWorld(1, 1, 1)
	c := w.instances[0].call(t, unknownInstance, 0, nil)
	t.Run("is undetermined under a lock mode, with the reason", func(t *testing.T) {
		r := newRunner(t, Config{Mode: lockpolicy.ModeNATEgress})
		r.Observe(&c.rec, detect.Instance{}, false)
		s := flushed(t, r)
		if s.Calls != 1 || s.Undetermined != 1 || s.WouldDeny != 0 {
			t.Fatalf("got %+v, want one undetermined call", s)
		}
		rs := s.Accounts[0].Roles[0]
		if len(rs.Statements) != 0 {
			t.Errorf("the undetermined call is charged to statements %+v; it depends on the whole lock", rs.Statements)
		}
		if len(rs.UndeterminedExamples) != 1 || !strings.Contains(rs.UndeterminedExamples[0].Reason, "is not in the inventory") {
			t.Errorf("examples %+v do not say why", rs.UndeterminedExamples)
		}
	})
	t.Run("is evaluated all the same under a static policy", func(t *testing.T) {
		r := newRunner(t, Config{Policy: scp(t, lockpolicy.SCPOptions{Trust: trust, RestrictInternet: true})})
		r.Observe(&c.rec, detect.Instance{}, false)
		if s := flushed(t, r); s.Calls != 1 || s.WouldDeny != 1 {
			t.Fatalf("got %+v, want the internet call denied by the SCP", s)
		}
	})
}

func TestALockThatCannotBeRenderedIsAnError(t *testing.T) {
	w := newWorld(1, 1, 1)
	c := w.instances[0].call(t, ownEndpoint, 0, nil)
	inv := c.inv
	inv.VpcID, inv.PublicIPs = "", nil // nothing to lock to
	r := newRunner(t, Config{Mode: lockpolicy.ModeVPCEndpointsOnly})
	r.Observe(&c.rec, inv, true)
	s := flushed(t, r)
	if s.Errors != 1 || s.Calls != 0 || len(s.ErrorExamples) != 1 || !strings.Contains(s.ErrorExamples[0].Error, "nothing to lock to") {
		t.Fatalf("got %+v, want one error saying there is nothing to lock to", s)
	}
}

func TestFlushWritesOneReportLineAndOneMetricRecord(t *testing.T) {
	w := newWorld(1, 2, 2)
	calls := w.traffic(t, 100, 3, thiefInternet, ownEndpoint, strayVPCE)
	r := newRunner(t, Config{Mode: lockpolicy.ModeInstancePublicIP, Trust: trust})
	for i := range calls {
		r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
	}
	var buf bytes.Buffer
	now := time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)
	if err := r.Flush(&buf, now, "req-7"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("Flush wrote %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var line shadow.LogLine
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	wantProposal := "lock:instance-public-ip+trust:"
	if line.Msg != shadow.ReportMessage || line.Level != "INFO" || line.Mode != "instance-public-ip" ||
		!strings.HasPrefix(line.Proposal, wantProposal) || line.RequestID != "req-7" || line.Time != "2026-12-01T11:00:00Z" {
		t.Errorf("report line head %+v", line)
	}
	if line.Report.Calls != 100 || line.Report.WouldDeny == 0 || line.Report.Undetermined == 0 {
		t.Errorf("report %+v, want 100 calls, some denied, some undetermined", line.Report)
	}
	var m struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		RequestID          string `json:"requestId"`
		WouldDeny          int64
		ShadowUndetermined int64
		ShadowCalls        int64
		ShadowMode         string
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	d := m.AWS.CloudWatchMetrics
	if len(d) != 1 || d[0].Namespace != contract.DetectorMetricsNamespace || len(d[0].Dimensions) != 1 || len(d[0].Dimensions[0]) != 0 ||
		len(d[0].Metrics) != 2 || d[0].Metrics[0].Name != MetricWouldDeny || d[0].Metrics[1].Name != MetricUndetermined {
		t.Errorf("EMF directive %+v: want namespace %s, no dimensions, metrics WouldDeny and ShadowUndetermined", d, contract.DetectorMetricsNamespace)
	}
	if m.AWS.Timestamp != now.UnixMilli() || m.RequestID != "req-7" || m.WouldDeny != line.Report.WouldDeny ||
		m.ShadowUndetermined != line.Report.Undetermined || m.ShadowCalls != 100 || m.ShadowMode != "instance-public-ip" {
		t.Errorf("EMF values %+v disagree with the report", m)
	}

	t.Run("and starts a new report", func(t *testing.T) {
		if s := flushed(t, r); s.Calls != 0 || s.WouldDeny != 0 || s.Accounts != nil {
			t.Errorf("the second report carries %+v", s)
		}
	})
}

func TestReportsOfManyInvocationsMergeToTheReportOfOne(t *testing.T) {
	w := newWorld(2, 3, 2)
	calls := w.traffic(t, 1000, 4)
	cfg := Config{Mode: lockpolicy.ModeNATEgress, Trust: trust}
	whole := newRunner(t, cfg)
	for i := range calls {
		whole.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
	}
	want := flushed(t, whole)

	var logs bytes.Buffer
	part := newRunner(t, cfg)
	for i := range calls {
		part.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
		if i%37 == 36 || i == len(calls)-1 {
			if err := part.Flush(&logs, time.Date(2026, 12, 1, 11, 0, i, 0, time.UTC), fmt.Sprint("req-", i)); err != nil {
				t.Fatal(err)
			}
			logs.WriteString(`{"time":"2026-12-01T11:00:00Z","level":"INFO","msg":"invocation done"}` + "\n")
		}
	}
	got, err := shadow.ReadReports(&logs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("merged reports differ from one report:\n got %s\nwant %s", g, w)
	}
}

func TestThePolicyCacheIsBoundedAndFollowsTheInventory(t *testing.T) {
	w := newWorld(1, 4, 5) // 20 instances
	r := newRunner(t, Config{Mode: lockpolicy.ModeInstancePublicIP, MaxPolicies: 8})
	calls := w.traffic(t, 400, 5, ownEndpoint)
	for i := range calls {
		r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
		if n := r.cached(); n > 8 {
			t.Fatalf("%d locks cached, over the bound of 8", n)
		}
	}
	if s := flushed(t, r); s.Calls != 400 || s.WouldDeny != 0 {
		t.Fatalf("got %+v, want 400 allowed calls", s)
	}

	t.Run("a new public address gives a new lock", func(t *testing.T) {
		in := w.instances[0]
		c := in.call(t, ownPublic, 0, nil)
		r.Observe(&c.rec, c.inv, true)
		moved := in
		moved.public = "198.51.100.200"
		c2 := moved.call(t, ownPublic, 1, nil)
		r.Observe(&c2.rec, c2.inv, true)
		r.Observe(&c.rec, c2.inv, true) // the old address, with the new inventory
		if s := flushed(t, r); s.Calls != 3 || s.WouldDeny != 1 {
			t.Fatalf("got %d calls, %d would deny; want 3 and 1 (the old address after the change)", s.Calls, s.WouldDeny)
		}
	})
}

func TestObserveIsSafeForConcurrentUse(t *testing.T) {
	w := newWorld(2, 2, 3)
	calls := w.traffic(t, 800, 6)
	p := proposal{mode: lockpolicy.ModeNATEgress, trusted: true}
	r := newRunner(t, p.config(t))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(calls); i += 8 {
				r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
			}
		})
	}
	wg.Wait()
	s := flushed(t, r)
	want, _ := p.expected(calls)
	if s.Calls != want.calls || s.WouldDeny != want.denied || s.Undetermined != want.undetermined {
		t.Fatalf("got %d/%d/%d, want %d/%d/%d", s.Calls, s.WouldDeny, s.Undetermined, want.calls, want.denied, want.undetermined)
	}
}

func TestFlushShrinksABigReportToOneLogLine(t *testing.T) {
	w := newWorld(4, 25, 2) // 100 roles
	calls := w.traffic(t, 2000, 8, thiefInternet, thiefNeighbour, strayVPCE)
	r := newRunner(t, Config{Mode: lockpolicy.ModeNATEgress, MaxLineBytes: 16 << 10})
	for i := range calls {
		r.Observe(&calls[i].rec, calls[i].inv, calls[i].found)
	}
	var buf bytes.Buffer
	if err := r.Flush(&buf, time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC), ""); err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(buf.String(), "\n")
	if len(line) > 16<<10 {
		t.Errorf("the report line has %d bytes, over the 16 KiB bound", len(line))
	}
	s, err := shadow.ReadReports(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proposal{mode: lockpolicy.ModeNATEgress}.expected(calls)
	if !s.Trimmed || s.Calls != want.calls || s.WouldDeny != want.denied || s.Undetermined != want.undetermined {
		t.Errorf("shrunk report: trimmed %v, %d/%d/%d; want trimmed and the exact counts %d/%d/%d",
			s.Trimmed, s.Calls, s.WouldDeny, s.Undetermined, want.calls, want.denied, want.undetermined)
	}
}

func TestANilRunnerDoesNothing(t *testing.T) {
	var r *Runner
	w := newWorld(1, 1, 1)
	c := w.instances[0].call(t, thiefInternet, 0, nil)
	r.Observe(&c.rec, c.inv, true)
	var buf bytes.Buffer
	if err := r.Flush(&buf, time.Now(), ""); err != nil || buf.Len() != 0 {
		t.Fatalf("Flush = %v, wrote %q", err, buf.String())
	}
	if r.Mode() != "" || r.Proposal() != "" {
		t.Fatal("a nil runner names a proposal")
	}
}
