package detectorfn

// The central detector of an organisation, in process: the production
// wiring (newHandler) against the organisation fake (lambdatest.Org: per
// account STS sessions, per account and region EC2), every call taking a
// realistic latency on a simulated clock, with AWS's throttling and
// AccessDenied where they matter.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

const (
	testOrgID      = "o-a1b2c3d4e5"
	testMemberRole = "defenders-inventory"
	attackerIP     = "203.0.113.66"
)

// orgRegions are the regions every member account runs instances in; the
// detector runs in the first.
var orgRegions = []string{ctt.Region, "us-east-1", "us-west-2", "ap-southeast-2"}

// orgInstance is an instance of a member account.
type orgInstance struct {
	account, region, id, publicIP, natIP string
}

// orgWorld is an organisation of member accounts with instances in every
// region, and the detector's own account.
type orgWorld struct {
	clock    *simClock
	org      *lambdatest.Org
	own      *slowEC2 // the detector's own account, in its region
	accounts []string
	inst     []orgInstance // every member instance
	sns      *fakeSNS
	emf      bytes.Buffer
	logs     bytes.Buffer
}

// orgAccount is the id of the i-th member account.
func orgAccount(i int) string { return fmt.Sprintf("2%011d", 100000+i) }

// newOrgWorld builds accounts member accounts with perRegion instances in
// each region of orgRegions, in 2 VPCs per account and region with a NAT
// gateway each.
func newOrgWorld(accounts, perRegion int) *orgWorld {
	clock := newSimClock()
	w := &orgWorld{clock: clock, org: lambdatest.NewOrg(testOrgID, orgRegions...), sns: &fakeSNS{}}
	w.org.Now, w.org.Wait = clock.Now, clock.Advance
	// Latencies as measured from a Lambda function in the same region:
	// AssumeRole about 100 ms, EC2 Describe* 60 ms (cross-region more).
	w.org.STSLatency, w.org.EC2Latency = 100*time.Millisecond, 60*time.Millisecond
	// AWS's buckets: EC2's non-mutating actions 20 a second into 100 per
	// account and region; STS for the security account: unknown (AWS does
	// not publish it), 50 a second here, which the detector's own limit
	// (10 a second) stays under.
	w.org.EC2Rate, w.org.EC2Burst = 20, 100
	w.org.STSRate, w.org.STSBurst = 50, 100
	w.own = &slowEC2{EC2: &lambdatest.EC2{}, clock: clock, latency: 60 * time.Millisecond}
	var regions []ec2types.Region
	for _, r := range orgRegions {
		regions = append(regions, ec2types.Region{RegionName: aws.String(r)})
	}
	w.own.SetRegions(regions...)
	n := 0
	for a := range accounts {
		account := orgAccount(a)
		w.accounts = append(w.accounts, account)
		w.org.AddAccount(account, testMemberRole)
		for ri, region := range orgRegions {
			f := w.org.EC2(account, region)
			for v := range 2 {
				vpc := fmt.Sprintf("vpc-%08x%09x", a, ri*2+v)
				f.AddNatGateway(ec2types.NatGateway{VpcId: aws.String(vpc), State: ec2types.NatGatewayStateAvailable,
					NatGatewayAddresses: []ec2types.NatGatewayAddress{{PublicIp: aws.String(fmt.Sprintf("100.%d.%d.%d", 64+a/250, a%250, 200+ri*2+v))}}})
			}
			for k := range perRegion {
				n++
				vpc := fmt.Sprintf("vpc-%08x%09x", a, ri*2+k%2)
				in := orgInstance{account: account, region: region, id: fmt.Sprintf("i-%08x%09x", a, ri*1000+k),
					publicIP: fmt.Sprintf("%d.%d.%d.%d", 11+ri, a/250, a%250, 1+k), natIP: fmt.Sprintf("100.%d.%d.%d", 64+a/250, a%250, 200+ri*2+k%2)}
				f.PutInstance(ec2types.Instance{
					InstanceId: aws.String(in.id), VpcId: aws.String(vpc), PublicIpAddress: aws.String(in.publicIP),
					PrivateIpAddress: aws.String(fmt.Sprintf("10.%d.%d.%d", ri, k/250, 1+k%250)),
					State:            &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
				})
				w.inst = append(w.inst, in)
			}
		}
	}
	return w
}

// call is a record of a call made with in's credentials to the API of
// region (its own unless told otherwise) from src.
func (w *orgWorld) call(in orgInstance, region, src string, n int) []byte {
	e := ctt.Event{
		Identity:    ctt.InstanceIdentity(in.id, "2.0").InAccount(in.account),
		EventSource: "ec2.amazonaws.com", EventName: "DescribeInstances", Region: region, SourceIP: src,
		ReadOnly: true, Management: true, RecipientAccount: in.account,
		EventID: fmt.Sprintf("6e1a9c2b-7d3f-4e5a-8b6c-%012d", n),
	}
	return ctt.EventBridge(e.JSON()) // as the central bus delivers it
}

// handler wires the central detector over w; k shrinks its bounds.
func (w *orgWorld) handler(k clock) *Handler {
	s := detect.Settings{
		TopicARN: "arn:aws:sns:eu-west-1:111122223333:alerts", DLQURL: "https://sqs.example/q",
		DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Region: ctt.Region,
		SelfRoleARN: ctt.DetectorRoleARN, OrganizationID: testOrgID, MemberRoleName: testMemberRole,
	}
	k.now, k.sleep = w.clock.Now, w.clock.Sleep
	c := Clients{
		EC2:     w.own,
		EC2In:   func(string) ec2inventory.API { return w.own },
		Regions: w.own,
		SNS:     w.sns,
		SQS:     &fakeSQS{},
		STS:     w.org,
		MemberEC2: func(region string, creds aws.CredentialsProvider) ec2inventory.MemberAPI {
			return w.org.EC2As(region, creds)
		},
	}
	return newHandler(s, c, slog.New(slog.NewJSONHandler(&w.logs, nil)), &w.emf, k)
}

// published returns the alerts published to SNS so far.
func (w *orgWorld) published(t testing.TB) []detect.Alert {
	t.Helper()
	w.sns.mu.Lock()
	defer w.sns.mu.Unlock()
	var out []detect.Alert
	for _, in := range w.sns.in {
		var a detect.Alert
		if err := json.Unmarshal([]byte(aws.ToString(in.Message)), &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// invoke sends one event; undecided reports an UndecidedRecords failure.
func invoke(t testing.TB, h *Handler, ev []byte) (undecided bool) {
	t.Helper()
	_, err := h.Invoke(context.Background(), ev)
	if err == nil {
		return false
	}
	var ie messages.InvokeResponse_Error
	if !errors.As(err, &ie) || ie.Type != ErrTypeUndecided {
		t.Fatalf("invocation failed: %v", err)
	}
	return true
}

func TestTheCentralDetectorJudgesEachAccountAgainstItsOwnInventory(t *testing.T) {
	w := newOrgWorld(6, 2)
	noStack, blipped := w.accounts[4], w.accounts[5]
	w.org.SetRoleName(noStack, "") // its member stack is missing
	w.org.FailAssumeRole(blipped, lambdatest.OrgError("Throttling", "Rate exceeded"))
	h := w.handler(clock{})
	byAccount := func(a string) []orgInstance {
		var out []orgInstance
		for _, in := range w.inst {
			if in.account == a {
				out = append(out, in)
			}
		}
		return out
	}
	a0, a1, a2 := byAccount(w.accounts[0]), byAccount(w.accounts[1]), byAccount(w.accounts[2])
	n := 0
	next := func() int { n++; return n }
	send := func(ev []byte) bool { w.clock.Advance(50 * time.Millisecond); return invoke(t, h, ev) }

	t.Run("legitimate calls of every account and region are OK, with one AssumeRole per account", func(t *testing.T) {
		for _, a := range w.accounts[:4] {
			for _, in := range byAccount(a) {
				if send(w.call(in, in.region, in.publicIP, next())) || send(w.call(in, in.region, in.natIP, next())) {
					t.Fatalf("%s undecided", in.id)
				}
			}
		}
		// An instance of ap-southeast-2 calling IAM (recorded in us-east-1).
		in := a0[len(a0)-1]
		if send(w.call(in, "us-east-1", in.publicIP, next())) {
			t.Fatal("global call undecided")
		}
		if got := w.published(t); len(got) != 0 {
			t.Fatalf("alerts for legitimate calls: %+v", got)
		}
		for _, a := range w.accounts[:4] {
			if c := w.org.Stats().AssumeRoleBy[a]; c != 1 {
				t.Errorf("account %s: %d AssumeRole calls", a, c)
			}
		}
	})
	t.Run("another account's address is a BadSource naming the account and both regions", func(t *testing.T) {
		// a1's instance from a2's public address, a0's from the attacker.
		send(w.call(a1[3], a1[3].region, a2[3].publicIP, next()))
		send(w.call(a0[5], "eu-west-1", attackerIP, next()))
		got := w.published(t)
		if len(got) != 2 {
			t.Fatalf("alerts %+v", got)
		}
		for i, want := range []orgInstance{a1[3], a0[5]} {
			a := got[i]
			if a.Type != "BadSource" || a.Severity != detect.SeverityHigh || a.Account != want.account || a.InstanceID != want.id ||
				a.InstanceRegion != want.region || a.Region == "" {
				t.Errorf("alert %d: %s %s account %s instance %s region %s instance_region %s; want %s in %s",
					i, a.Type, a.Severity, a.Account, a.InstanceID, a.Region, a.InstanceRegion, want.id, want.account)
			}
		}
		if got[1].Region != "eu-west-1" || got[1].InstanceRegion != a0[5].region {
			t.Errorf("regions %s/%s", got[1].Region, got[1].InstanceRegion)
		}
	})
	t.Run("an account without its member stack raises one AccountNotCovered alert", func(t *testing.T) {
		before := len(w.published(t))
		for _, in := range byAccount(noStack)[:3] {
			if send(w.call(in, in.region, in.publicIP, next())) {
				t.Fatal("a not covered account's record was retried")
			}
		}
		got := w.published(t)[before:]
		if len(got) != 1 || got[0].Type != "AccountNotCovered" || got[0].Account != noStack || got[0].UniqID != noStack+"-AccountNotCovered" {
			t.Fatalf("alerts %+v", got)
		}
		if c := w.org.Stats().AssumeRoleBy[noStack]; c != 1 {
			t.Errorf("%d AssumeRole calls for a denied account, want 1 (remembered)", c)
		}
		var m orgMetrics
		lines := strings.Split(strings.TrimSpace(w.emf.String()), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
			t.Fatal(err)
		}
		if m.NotCovered != 1 || m.Account != noStack || m.MemberRecords != 1 {
			t.Errorf("last EMF record %s", lines[len(lines)-1])
		}
	})
	t.Run("a throttled AssumeRole leaves the record undecided, and the retry decides it", func(t *testing.T) {
		in := byAccount(blipped)[0]
		ev := w.call(in, in.region, attackerIP, next())
		if !send(ev) {
			t.Fatal("the record of a throttled account was not left for a retry")
		}
		w.clock.Advance(time.Minute) // Lambda retries a minute later
		if send(ev) {
			t.Fatal("the retry is still undecided")
		}
		got := w.published(t)
		if a := got[len(got)-1]; a.Type != "BadSource" || a.Account != blipped || a.InstanceID != in.id {
			t.Errorf("alert after the retry %+v", a)
		}
	})
	t.Run("alerting accounts get a metric with an Account dimension, and only they", func(t *testing.T) {
		var dimensioned []string
		for _, line := range strings.Split(strings.TrimSpace(w.emf.String()), "\n") {
			if strings.Contains(line, `"Dimensions":[["Account"]]`) {
				var r struct {
					Account string
					Alerts  int
				}
				if err := json.Unmarshal([]byte(line), &r); err != nil || r.Alerts == 0 {
					t.Errorf("dimensioned record %s", line)
				}
				dimensioned = append(dimensioned, r.Account)
			}
		}
		slices.Sort(dimensioned)
		want := []string{w.accounts[0], w.accounts[1], noStack, blipped}
		slices.Sort(want)
		if !slices.Equal(slices.Compact(dimensioned), want) {
			t.Errorf("accounts with a dimensioned metric %v, want the alerting ones %v", dimensioned, want)
		}
	})
	t.Run("no EC2 call was signed with an expired or unknown session", func(t *testing.T) {
		if s := w.org.Stats(); s.EC2Expired+s.EC2Unknown != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestMemberSessionsAreRefreshedBeforeTheyExpire runs two hours of one
// account's traffic: one AssumeRole per 55 minutes, never an EC2 call with
// an expired session.
func TestMemberSessionsAreRefreshedBeforeTheyExpire(t *testing.T) {
	w := newOrgWorld(1, 1)
	h := w.handler(clock{})
	in := w.inst[0]
	for i := range 240 { // every 30 s for 2 hours
		w.clock.Advance(30 * time.Second)
		if invoke(t, h, w.call(in, in.region, in.publicIP, i)) {
			t.Fatal("undecided")
		}
	}
	s := w.org.Stats()
	if s.AssumeRole != 3 || s.EC2Expired != 0 || len(w.published(t)) != 0 {
		t.Errorf("%d AssumeRole in 2 hours (want 3: at 0, 55 and 110 minutes), %d expired EC2 calls, %d alerts", s.AssumeRole, s.EC2Expired, len(w.published(t)))
	}
}

// scaleRun is an organisation run: its size, its traffic and the
// detector's bounds.
type scaleRun struct {
	accounts, perRegion int
	calls               int     // legitimate calls per instance
	rate                float64 // events a second on the central bus
	containers          int     // Lambda execution environments the events are spread over
	k                   clock   // the detector's bounds (zero: the defaults)
}

// orgFigures are what an organisation run measured.
type orgFigures struct {
	run                                scaleRun
	instances, events, invocations     int
	undecided, alerts                  int
	undecidedBy                        map[string]int // account -> undecided invocations
	assumeRole, ec2                    int
	assumeRoleBy                       map[string]int
	ec2ByOp                            map[string]int
	durP50, durP99, durMax, durMean    time.Duration // invocation durations: the calls' latencies and waits
	peakHeap, retained, baseline       uint64
	peakAccounts, peakEntries, evicted int
	elapsed, wall                      time.Duration
}

func (f orgFigures) String() string {
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	r := f.run
	return fmt.Sprintf("%d accounts x %d regions, %d instances, %d calls each; %d events at %.0f/s over %d containers (%v simulated), "+
		"%d invocations (%d undecided, retried), %d alerts; "+
		"STS: %d AssumeRole (%.4f per event); EC2: %d calls (%.3f per event: %v); "+
		"invocation duration p50 %v p99 %v max %v mean %v (Lambda concurrency at this rate: %.1f); "+
		"heap: fake organisation %.1f MB, peak HeapAlloc %.1f MB, retained by the detector %.1f MB (%.0f bytes per cached entry); "+
		"detector caches: at most %d accounts and %d entries per container, %d account evictions; %v real",
		r.accounts, len(orgRegions), f.instances, r.calls, f.events, r.rate, r.containers, f.elapsed.Round(time.Second),
		f.invocations, f.undecided, f.alerts,
		f.assumeRole, float64(f.assumeRole)/float64(f.events), f.ec2, float64(f.ec2)/float64(f.events), f.ec2ByOp,
		f.durP50, f.durP99, f.durMax, f.durMean.Round(time.Millisecond), r.rate*f.durMean.Seconds(),
		mb(f.baseline), mb(f.peakHeap), mb(f.retained), float64(f.retained)/float64(max(f.peakEntries*r.containers, 1)),
		f.peakAccounts, f.peakEntries, f.evicted, f.wall.Round(time.Millisecond))
}

// heapAlloc returns the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// runAtScale sends r.calls legitimate calls of every member instance (half
// from its public address, half through its VPC's NAT, a quarter of those
// to us-east-1 as calls to global services are) and the planted attacks,
// in random order, one EventBridge event per invocation as the central bus
// delivers them, at r.rate events a second, each to one of r.containers
// execution environments (each with its own caches, as Lambda's are); it
// retries what is left undecided a minute later, as Lambda would, and
// checks that exactly the planted attacks alert.
//
// The events are paced by the simulated clock; the calls' latencies are
// not added to it (the containers run concurrently) but to the duration of
// the invocation that made them, from which Lambda's concurrency follows
// (rate x mean duration).
func runAtScale(t *testing.T, r scaleRun) orgFigures {
	t.Helper()
	began := time.Now()
	w := newOrgWorld(r.accounts, r.perRegion)
	var spent atomic.Int64 // the current invocation's latencies (calls run concurrently within it)
	w.org.Wait = func(d time.Duration) { spent.Add(int64(d)) }
	rng := rand.New(rand.NewPCG(1, 2))
	// Planted: BadSource in 10 known accounts (each a different region),
	// an account without its member stack, and an account whose first
	// AssumeRole is throttled.
	type attack struct {
		in  orgInstance
		src string
	}
	var attacks []attack
	wantAlerts := map[string]string{} // account/instance -> type
	for i := range 10 {
		acct := w.accounts[(i*37+3)%r.accounts]
		var cand []orgInstance
		for _, in := range w.inst {
			if in.account == acct && in.region == orgRegions[i%len(orgRegions)] {
				cand = append(cand, in)
			}
		}
		in := cand[rng.IntN(len(cand))]
		attacks = append(attacks, attack{in, attackerIP})
		wantAlerts[in.account+"/"+in.id] = "BadSource"
	}
	noStack := w.accounts[r.accounts-1]
	w.org.SetRoleName(noStack, "")
	wantAlerts[noStack+"/"] = "AccountNotCovered"
	blipped := w.accounts[r.accounts-2]
	w.org.FailAssumeRole(blipped, lambdatest.OrgError("Throttling", "Rate exceeded"))

	var events [][]byte
	n := 0
	for _, in := range w.inst {
		for c := range r.calls {
			region, src := in.region, in.publicIP
			if c%2 == 1 {
				src = in.natIP
				if rng.IntN(4) == 0 {
					region = "us-east-1"
				}
			}
			events = append(events, w.call(in, region, src, n))
			n++
		}
	}
	for _, a := range attacks {
		events = append(events, w.call(a.in, a.in.region, a.src, n))
		n++
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	f := orgFigures{run: r, instances: len(w.inst), events: len(events)}
	f.baseline = heapAlloc()
	hs := make([]*Handler, r.containers)
	for i := range hs {
		hs[i] = w.handler(r.k)
	}
	start := w.clock.Now()
	gap := time.Duration(float64(time.Second) / r.rate)
	var durations []time.Duration
	var retry [][]byte
	var ms runtime.MemStats
	send := func(ev []byte) bool {
		spent.Store(0)
		t0 := w.clock.Now()
		undecided := invoke(t, hs[rng.IntN(len(hs))], ev)
		durations = append(durations, time.Duration(spent.Load())+w.clock.Now().Sub(t0)) // latencies, and the rate limits' waits
		f.invocations++
		return undecided
	}
	f.undecidedBy = map[string]int{}
	for i, ev := range events {
		w.clock.Advance(gap)
		if send(ev) {
			f.undecided++
			retry = append(retry, ev)
			var e struct {
				Detail struct {
					UserIdentity struct {
						AccountID string `json:"accountId"`
					} `json:"userIdentity"`
				} `json:"detail"`
			}
			_ = json.Unmarshal(ev, &e)
			f.undecidedBy[e.Detail.UserIdentity.AccountID]++
		}
		if i%100 == 0 {
			runtime.ReadMemStats(&ms)
			f.peakHeap = max(f.peakHeap, ms.HeapAlloc)
		}
	}
	w.clock.Advance(time.Minute) // Lambda retries the failed invocations a minute later
	for _, ev := range retry {
		if send(ev) {
			t.Errorf("still undecided after a retry: %s", ev)
		}
	}
	f.elapsed = w.clock.Now().Sub(start)
	slices.Sort(durations)
	var sum time.Duration
	for _, d := range durations {
		sum += d
	}
	f.durP50, f.durP99, f.durMax = durations[len(durations)/2], durations[len(durations)*99/100], durations[len(durations)-1]
	f.durMean = sum / time.Duration(len(durations))

	withDetector := heapAlloc()
	for _, h := range hs {
		ost := h.org.Stats()
		f.peakAccounts, f.peakEntries = max(f.peakAccounts, ost.PeakAccounts), max(f.peakEntries, ost.PeakEntries)
		f.evicted += ost.Evicted
	}
	runtime.KeepAlive(hs)
	hs = nil
	f.retained = withDetector - min(withDetector, heapAlloc())
	f.peakHeap = max(f.peakHeap, withDetector)

	st := w.org.Stats()
	f.assumeRole, f.assumeRoleBy, f.ec2ByOp = st.AssumeRole, st.AssumeRoleBy, st.EC2
	for _, c := range st.EC2 {
		f.ec2 += c
	}
	// Exactly the planted alerts: the deduplication is per container and
	// window (an hour), so the account without its stack may alert once
	// per container and hour.
	got := map[string]int{}
	for _, a := range w.published(t) {
		f.alerts++
		key := a.Account + "/" + a.InstanceID
		if a.Type == "AccountNotCovered" {
			key = a.Account + "/"
		}
		if wantAlerts[key] != a.Type {
			t.Errorf("alert %s %s was not planted", a.Type, key)
		}
		got[key]++
		if a.Account == "" || a.Region == "" || (a.Type == "BadSource" && a.InstanceRegion == "") {
			t.Errorf("alert without its account or region: %+v", a)
		}
	}
	for key, typ := range wantAlerts {
		most := 1
		if typ == "AccountNotCovered" {
			most = r.containers * (1 + int(f.elapsed/time.Hour))
		}
		if got[key] < 1 || got[key] > most {
			t.Errorf("planted %s %s: %d alerts, want 1 to %d", typ, key, got[key], most)
		}
	}
	if st.EC2Expired+st.EC2Unknown != 0 {
		t.Errorf("EC2 calls with an expired or unknown session: %+v", st)
	}
	f.wall = time.Since(began)
	return f
}

// TestOrganisationAtScale: 200 accounts x 4 regions x 3 instances, every
// instance's calls through the central detector, 40 events a second on the
// central bus. Exactly the planted attacks alert (10 BadSource in known
// accounts, one AccountNotCovered), the throttled account is decided on its
// retry; one AssumeRole per account and container (two for the throttled
// one), one DescribeRegions per account, about one EC2 call per event, and
// the detector's caches stay within their bounds, also when the bounds are
// much smaller than the organisation.
func TestOrganisationAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds: skipped with -short")
	}
	const accounts = 200
	t.Run("default bounds, one container", func(t *testing.T) {
		f := runAtScale(t, scaleRun{accounts: accounts, perRegion: 3, calls: 4, rate: 40, containers: 1})
		t.Log(f)
		for a, n := range f.assumeRoleBy {
			want := 1
			switch a {
			case orgAccount(accounts - 2):
				want = 2 // throttled, then the retry
			case orgAccount(accounts - 1):
				want = min(n, 1+int(f.elapsed/(5*time.Minute))) // the denial is remembered 5 minutes
			}
			if n != want {
				t.Errorf("account %s: %d AssumeRole calls, want %d", a, n, want)
			}
		}
		if got, want := f.ec2ByOp["DescribeRegions"], accounts-1; got != want {
			t.Errorf("%d DescribeRegions calls, want one per covered account (%d)", got, want)
		}
		// Each instance is looked up about once per inventory TTL (10
		// minutes; the run spans 5), a few more times for first calls
		// recorded in another region than the instance's; each VPC's NAT
		// gateways and endpoints once per TTL.
		if per := float64(f.ec2) / float64(f.events); per > 1.0 {
			t.Errorf("%.3f EC2 calls per event", per)
		}
		// The throttled account's records, until its failure is no longer
		// remembered (a second), and no other.
		if f.undecidedBy[orgAccount(accounts-2)] == 0 || len(f.undecidedBy) != 1 {
			t.Errorf("undecided per account %v, want the throttled account's only", f.undecidedBy)
		}
		if f.peakEntries > detect.DefaultOrgMaxInstances || f.peakAccounts > detect.DefaultOrgMaxAccounts {
			t.Errorf("caches beyond their bounds: %v", f)
		}
		if f.retained > 16<<20 {
			t.Errorf("the detector retains %d MB", f.retained>>20)
		}
		if f.durP99 > 2*time.Second {
			t.Errorf("p99 invocation %v", f.durP99)
		}
	})
	t.Run("bounds much smaller than the organisation, four containers", func(t *testing.T) {
		k := clock{orgMaxAccounts: 50, orgMaxInstances: 1000}
		f := runAtScale(t, scaleRun{accounts: accounts, perRegion: 3, calls: 2, rate: 40, containers: 4, k: k})
		t.Log(f)
		if f.peakAccounts > 50 || f.evicted == 0 {
			t.Errorf("accounts kept %d (bound 50), %d evictions", f.peakAccounts, f.evicted)
		}
		// Trim keeps the most recent account even when over budget: the
		// bound is the budget plus one account's caches.
		if f.peakEntries > 1000+len(orgRegions)*detect.DefaultOrgRegionMaxEntries {
			t.Errorf("peak entries %d", f.peakEntries)
		}
		// The sessions are not evicted with the inventories: at most one
		// AssumeRole per account and container (and the throttled retry).
		if f.assumeRole > 4*accounts+2 {
			t.Errorf("%d AssumeRole calls", f.assumeRole)
		}
	})
}

// TestFigureOrganisation logs the figures of larger organisations and of
// more containers; run it with DEFENDERS_FIGURES=1.
func TestFigureOrganisation(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") != "1" {
		t.Skip("figures: set DEFENDERS_FIGURES=1")
	}
	for _, r := range []scaleRun{
		{accounts: 200, perRegion: 3, calls: 4, rate: 40, containers: 1},
		{accounts: 200, perRegion: 3, calls: 10, rate: 40, containers: 1},
		{accounts: 200, perRegion: 3, calls: 4, rate: 40, containers: 10},
		{accounts: 1000, perRegion: 2, calls: 4, rate: 100, containers: 1},
		{accounts: 1000, perRegion: 2, calls: 4, rate: 100, containers: 10},
		{accounts: 1000, perRegion: 2, calls: 4, rate: 100, containers: 1, k: clock{orgMaxAccounts: 200, orgMaxInstances: 5000}},
		{accounts: 1000, perRegion: 2, calls: 4, rate: 100, containers: 1, k: clock{maxSessions: 500}},
	} {
		f := runAtScale(t, r)
		t.Logf("bounds %d accounts / %d entries / %d sessions (0: defaults): %v", r.k.orgMaxAccounts, r.k.orgMaxInstances, r.k.maxSessions, f)
	}
}
