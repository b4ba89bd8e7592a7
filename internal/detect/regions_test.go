package detect_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// The multi-region world: the detector runs in us-east-1 (where
// EventBridge delivers global-service events), the fixture instance
// ctt.InstanceID lives there, another instance lives in eu-west-1 and a
// third in us-west-2; ap-southeast-2 has none.
const (
	homeRegion = "us-east-1"
	euWest     = "eu-west-1"
	usWest     = "us-west-2"
	apSouth    = "ap-southeast-2"

	euInstanceID = "i-0e1e2e3e4e5e6e7e8"
	euPublicIP   = "192.0.2.77"
	euNATIP      = "192.0.2.78"
	euVPC        = "vpc-0e0e0e0e0e0e0e0e0"
	euEndpoint   = "vpce-0e0e0e0e0e0e0e0e"

	usWestInstanceID = "i-0f1f2f3f4f5f6f7f8"
	usWestPublicIP   = "198.51.100.201"
)

var enabledRegions = []string{apSouth, euWest, homeRegion, usWest}

func euInstance() detect.Instance {
	return detect.Instance{
		ID: euInstanceID, VpcID: euVPC,
		PublicIPs:      addrs(euPublicIP),
		NATIPs:         addrs(euNATIP),
		PrivateIPs:     addrs("10.20.1.5"),
		VPCEndpointIDs: []string{euEndpoint},
	}
}

// regionWorld is a MultiRegionInventory over one scriptable, counting
// source per region, each behind a CachedInventory as in the detector.
type regionWorld struct {
	sources map[string]*source // by region, home included
	inv     *detect.MultiRegionInventory

	mu           sync.Mutex
	regionsErr   error
	regionsCalls int
}

// newRegionWorld builds the world; tweak, if set, changes the options
// (and the world) before the inventory is built.
func newRegionWorld(allowed []string, tweak func(*regionWorld, *detect.RegionOptions)) *regionWorld {
	w := &regionWorld{sources: map[string]*source{
		homeRegion: newSource(world()),
		euWest:     newSource(map[string]detect.Instance{euInstanceID: euInstance()}),
		usWest: newSource(map[string]detect.Instance{usWestInstanceID: {
			ID: usWestInstanceID, VpcID: "vpc-0b0b0b0b0b0b0b0b0", PublicIPs: addrs(usWestPublicIP),
		}}),
		apSouth: newSource(map[string]detect.Instance{}),
	}}
	o := detect.RegionOptions{HomeRegion: homeRegion, Allowed: allowed}
	o.Regions = func(context.Context) ([]string, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.regionsCalls++
		if w.regionsErr != nil {
			return nil, w.regionsErr
		}
		return slices.Clone(enabledRegions), nil
	}
	o.Inventory = func(r string) detect.Inventory {
		return detect.NewCachedInventory(bulkSource{w.sources[r]}, detect.CacheOptions{})
	}
	if tweak != nil {
		tweak(w, &o)
	}
	w.inv = detect.NewMultiRegionInventory(detect.NewCachedInventory(bulkSource{w.sources[homeRegion]}, detect.CacheOptions{}), o)
	return w
}

// calls returns the source calls per region about id (bulk or single).
func (w *regionWorld) calls(id string) map[string]int {
	out := map[string]int{}
	for r, s := range w.sources {
		if n := s.count(id); n > 0 {
			out[r] = n
		}
	}
	return out
}

func (w *regionWorld) processor() *detect.Processor {
	return detect.NewProcessor(w.inv, detect.Config{
		Self: detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}, Account: ctt.Account, Region: homeRegion,
	})
}

// call is a record of an S3 call made with id's instance credentials to
// the API of region awsRegion from src.
func call(id, awsRegion, src string) ctt.Event {
	return ctt.Event{
		Identity:    ctt.InstanceIdentity(id, "2.0"),
		EventSource: "s3.amazonaws.com", EventName: "ListBuckets", Management: true, ReadOnly: true, TLS: true,
		Region: awsRegion, SourceIP: src,
		EventID: fmt.Sprintf("0d7e0f5c-1a2b-4c3d-9e8f-%012x", len(id)+len(awsRegion)+len(src)),
	}
}

// iamCall is a record of an IAM call (a global service: awsRegion
// us-east-1) made with id's instance credentials from src.
func iamCall(id, src string) ctt.Event {
	e := call(id, ctt.GlobalRegion, src)
	e.EventSource, e.EventName, e.Host = "iam.amazonaws.com", "GetRole", "iam.amazonaws.com"
	e.RequestParameters = `{"roleName":"web-server-role"}`
	return e
}

func parse(t *testing.T, e ctt.Event) cloudtrail.Record {
	t.Helper()
	r, err := cloudtrail.ParseRecord(e.JSON())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestProcessorJudgesEachRecordWhereItsInstanceLives(t *testing.T) {
	type want struct {
		alert          string // "" for none, else "Type Severity"
		instanceRegion string // of the alert
		stats          detect.Stats
	}
	judged := func(expected, alerts, otherRegion int) detect.Stats {
		return detect.Stats{Events: 1, InstanceSessions: 1, Expected: expected, Alerts: alerts,
			Rechecked: alerts, OtherRegion: otherRegion}
	}
	memberCall := call(euInstanceID, euWest, euPublicIP)
	memberCall.Identity = memberCall.Identity.InAccount(ctt.MemberAccount)
	memberCall.RecipientAccount = ctt.MemberAccount
	resourceOwnerCopy := call(ctt.InstanceID, homeRegion, ctt.AttackerIP)
	resourceOwnerCopy.EventSource, resourceOwnerCopy.EventName = "kms.amazonaws.com", "Decrypt"
	resourceOwnerCopy.RecipientAccount = ctt.MemberAccount
	tests := []struct {
		name string
		rec  ctt.Event
		want want
	}{
		{"an instance of the detector's region calling from its own address is OK",
			call(ctt.InstanceID, homeRegion, ctt.PublicIP), want{stats: judged(1, 0, 0)}},
		{"an instance of another region calling from its address there is OK",
			call(euInstanceID, euWest, euPublicIP), want{stats: judged(1, 0, 1)}},
		{"an instance of another region calling through its VPC's NAT gateway there is OK",
			call(euInstanceID, euWest, euNATIP), want{stats: judged(1, 0, 1)}},
		{"an instance of another region calling from an address it does not have is a BadSource judged against that region",
			call(euInstanceID, euWest, ctt.AttackerIP), want{"BadSource HIGH", euWest, judged(0, 1, 1)}},
		{"an instance of another region calling a third region's API from its own address is OK",
			call(euInstanceID, apSouth, euPublicIP), want{stats: judged(1, 0, 1)}},
		{"an IAM call recorded in us-east-1 by an instance in eu-west-1 is judged against eu-west-1",
			iamCall(euInstanceID, euPublicIP), want{stats: judged(1, 0, 1)}},
		{"an IAM call recorded in us-east-1 with eu-west-1 instance credentials from elsewhere is a BadSource",
			iamCall(euInstanceID, ctt.AttackerIP), want{"BadSource HIGH", euWest, judged(0, 1, 1)}},
		{"an instance in a region that no record names is still found",
			call(usWestInstanceID, euWest, usWestPublicIP), want{stats: judged(1, 0, 1)}},
		{"an instance unknown in every region is InstanceMissing",
			call(ctt.UnknownInstance, euWest, "198.51.100.99"), want{"InstanceMissing MEDIUM", "", judged(0, 1, 0)}},
		{"another account's instance session raises nothing and is counted",
			memberCall, want{stats: detect.Stats{Events: 1, InstanceSessions: 1, SkippedOtherAccount: 1}}},
		{"the resource owner's copy of a call made with our instance credentials is judged",
			resourceOwnerCopy, want{"BadSource HIGH", homeRegion, judged(0, 1, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRegionWorld(nil, nil)
			res := w.processor().Process(t.Context(), []cloudtrail.Record{parse(t, tt.rec)})
			if res.Stats != tt.want.stats {
				t.Errorf("stats = %+v\nwant    %+v", res.Stats, tt.want.stats)
			}
			switch {
			case tt.want.alert == "" && len(res.Alerts) != 0:
				t.Errorf("alert %s %s: %s", res.Alerts[0].Type, res.Alerts[0].Severity, res.Alerts[0].Reason)
			case tt.want.alert != "" && len(res.Alerts) != 1:
				t.Errorf("%d alerts, want one %s", len(res.Alerts), tt.want.alert)
			case tt.want.alert != "":
				a := res.Alerts[0]
				if got := a.Type + " " + string(a.Severity); got != tt.want.alert || a.InstanceRegion != tt.want.instanceRegion {
					t.Errorf("alert %s in %q (%s), want %s in %q", got, a.InstanceRegion, a.Reason, tt.want.alert, tt.want.instanceRegion)
				}
			}
			if len(res.Undecided) != 0 {
				t.Errorf("undecided: %v", res.Undecided[0].Err)
			}
		})
	}
}

func TestProcessorSkipsOtherAccountsWithoutLookingThemUp(t *testing.T) {
	w := newRegionWorld(nil, nil)
	e := call(euInstanceID, euWest, ctt.AttackerIP)
	e.Identity = e.Identity.InAccount(ctt.MemberAccount)
	e.RecipientAccount = ctt.MemberAccount
	res := w.processor().Process(t.Context(), []cloudtrail.Record{parse(t, e)})
	if len(res.Alerts) != 0 || len(res.Skipped) != 1 {
		t.Fatalf("alerts %d, skipped %d; want none and one", len(res.Alerts), len(res.Skipped))
	}
	s := res.Skipped[0]
	if s.Reason != detect.SkipOtherAccount || s.Account != ctt.MemberAccount || s.InstanceID != euInstanceID || s.Record.EventID != e.EventID {
		t.Errorf("skipped = %+v", s)
	}
	if calls := w.calls(euInstanceID); len(calls) != 0 || w.regionsCalls != 0 {
		t.Errorf("another account's instance was looked up: %v, %d DescribeRegions", calls, w.regionsCalls)
	}
}

func TestProcessorAttributesRecordsToAccounts(t *testing.T) {
	garble := func(f func(e *ctt.Event)) ctt.Event {
		e := call(ctt.UnknownInstance, homeRegion, "198.51.100.99")
		f(&e)
		return e
	}
	tests := []struct {
		name        string
		rec         ctt.Event
		self        string
		wantSkipped detect.SkipReason // "" for judged (here: InstanceMissing)
	}{
		{"a record of the detector's account is judged", garble(func(*ctt.Event) {}), ctt.Account, ""},
		{"a member account's record is skipped",
			garble(func(e *ctt.Event) {
				e.Identity = e.Identity.InAccount(ctt.MemberAccount)
				e.RecipientAccount = ctt.MemberAccount
			}), ctt.Account, detect.SkipOtherAccount},
		{"recipientAccountId does not override the credentials' account",
			garble(func(e *ctt.Event) { e.RecipientAccount = ctt.MemberAccount }), ctt.Account, ""},
		{"recipientAccountId decides when the identity names no account",
			garble(func(e *ctt.Event) {
				e.Identity.AccountID, e.Identity.ARN, e.Identity.IssuerARN = "", "", ""
				e.RecipientAccount = ctt.MemberAccount
			}), ctt.Account, detect.SkipOtherAccount},
		{"a garbled accountId makes the record unattributable",
			garble(func(e *ctt.Event) { e.Identity.AccountID = "not-an-account" }), ctt.Account, detect.SkipUnattributable},
		{"identity account fields that disagree make the record unattributable",
			garble(func(e *ctt.Event) { e.Identity.AccountID = ctt.MemberAccount }), ctt.Account, detect.SkipUnattributable},
		{"a garbled recipientAccountId with no identity account is unattributable",
			garble(func(e *ctt.Event) {
				e.Identity.AccountID, e.Identity.ARN, e.Identity.IssuerARN = "", "", ""
				e.RecipientAccount = "12345"
			}), ctt.Account, detect.SkipUnattributable},
		{"a detector that does not know its account judges every record",
			garble(func(e *ctt.Event) { e.Identity = e.Identity.InAccount(ctt.MemberAccount) }), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := detect.NewProcessor(world(), detect.Config{Account: tt.self})
			res := p.Process(t.Context(), []cloudtrail.Record{parse(t, tt.rec)})
			checkConservation(t, res.Stats)
			if tt.wantSkipped == "" {
				if len(res.Alerts) != 1 || len(res.Skipped) != 0 {
					t.Errorf("alerts %d, skipped %+v; want the record judged", len(res.Alerts), res.Skipped)
				}
				return
			}
			if len(res.Alerts) != 0 || len(res.Skipped) != 1 || res.Skipped[0].Reason != tt.wantSkipped {
				t.Errorf("alerts %d, skipped %+v; want it skipped as %s", len(res.Alerts), res.Skipped, tt.wantSkipped)
			}
		})
	}
}

func TestProcessorJudgesARecordWithoutAnyAccountAsItsOwn(t *testing.T) {
	rec := parse(t, call(ctt.UnknownInstance, homeRegion, "198.51.100.99"))
	rec.UserIdentity.AccountID, rec.UserIdentity.ARN, rec.RecipientAccountID = "", "", ""
	rec.UserIdentity.SessionContext.SessionIssuer.AccountID = ""
	p := detect.NewProcessor(world(), detect.Config{Account: ctt.Account})
	res := p.Process(t.Context(), []cloudtrail.Record{rec})
	if len(res.Alerts) != 1 || res.Alerts[0].Type != "InstanceMissing" || len(res.Skipped) != 0 {
		t.Errorf("alerts %+v, skipped %+v; want an InstanceMissing", res.Alerts, res.Skipped)
	}
}

func TestProcessorSetAccountAppliesToLaterBatches(t *testing.T) {
	e := call(ctt.UnknownInstance, homeRegion, "198.51.100.99")
	e.Identity = e.Identity.InAccount(ctt.MemberAccount)
	p := detect.NewProcessor(world(), detect.Config{DedupeWindow: -1})
	if res := p.Process(t.Context(), []cloudtrail.Record{parse(t, e)}); len(res.Alerts) != 1 {
		t.Fatalf("without an account: %d alerts, want the record judged", len(res.Alerts))
	}
	p.SetAccount(ctt.Account)
	if res := p.Process(t.Context(), []cloudtrail.Record{parse(t, e)}); len(res.Alerts) != 0 || res.Stats.SkippedOtherAccount != 1 {
		t.Errorf("with the account set: %d alerts, stats %+v", len(res.Alerts), res.Stats)
	}
	if p.Account() != ctt.Account {
		t.Errorf("Account() = %q", p.Account())
	}
}

// gatedSource is a BulkInventory that never answers before ctx ends.
type gatedSource struct{}

func (gatedSource) Lookup(ctx context.Context, _ string) (detect.Instance, bool, error) {
	<-ctx.Done()
	return detect.Instance{}, false, ctx.Err()
}

func (gatedSource) LookupMany(ctx context.Context, _ []string) (map[string]detect.Instance, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestProcessorLeavesRecordsUndecidedWhenTheCrossRegionLookupFails(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(w *regionWorld, o *detect.RegionOptions)
		rec     ctt.Event
		decided bool // the failure does not matter: the instance is found elsewhere
	}{
		{"a region that fails leaves an instance found nowhere undecided",
			func(w *regionWorld, _ *detect.RegionOptions) { w.sources[apSouth].fail(errEC2) },
			call(ctt.UnknownInstance, euWest, "198.51.100.99"), false},
		{"DescribeRegions failing leaves it undecided",
			func(w *regionWorld, _ *detect.RegionOptions) { w.regionsErr = errEC2 },
			call(ctt.UnknownInstance, euWest, "198.51.100.99"), false},
		{"the time budget running out leaves it undecided",
			func(w *regionWorld, o *detect.RegionOptions) {
				o.Budget = 50 * time.Millisecond
				inner := o.Inventory
				o.Inventory = func(r string) detect.Inventory {
					if r == usWest {
						return detect.NewCachedInventory(gatedSource{}, detect.CacheOptions{})
					}
					return inner(r)
				}
			},
			call(ctt.UnknownInstance, euWest, "198.51.100.99"), false},
		{"a failing region does not matter when another region knows the instance",
			func(w *regionWorld, _ *detect.RegionOptions) { w.sources[apSouth].fail(errEC2) },
			iamCall(euInstanceID, euPublicIP), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRegionWorld(nil, tt.setup)
			res := w.processor().Process(t.Context(), []cloudtrail.Record{parse(t, tt.rec)})
			checkConservation(t, res.Stats)
			if tt.decided {
				if len(res.Undecided) != 0 || res.Stats.Expected != 1 {
					t.Errorf("stats %+v, undecided %v; want the record judged", res.Stats, res.Undecided)
				}
				return
			}
			if len(res.Alerts) != 0 {
				t.Errorf("alert %s raised without an answer from every region", res.Alerts[0].Type)
			}
			if len(res.Undecided) != 1 || res.Stats.Undecided != 1 || res.Stats.RegionLookupFailed != 1 {
				t.Fatalf("stats %+v; want one undecided record, counted as a failed region lookup", res.Stats)
			}
			if err := res.Undecided[0].Err; !errors.Is(err, detect.ErrRegionLookup) {
				t.Errorf("error %v does not wrap ErrRegionLookup", err)
			}
		})
	}
}

func TestProcessorSkipsInstancesOutsideTheSearchedRegions(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		rec     ctt.Event
		want    string // "skipped", "OK" or an alert type
	}{
		{"an instance in an allowed region is judged", []string{euWest}, call(euInstanceID, euWest, euPublicIP), "OK"},
		{"an instance outside the allowed regions is skipped, not missing", []string{euWest}, call(usWestInstanceID, usWest, usWestPublicIP), "skipped"},
		{"an unknown instance is skipped when enabled regions are left out", []string{euWest}, call(ctt.UnknownInstance, euWest, "198.51.100.99"), "skipped"},
		{"an unknown instance is missing when the allowed regions cover every enabled region",
			[]string{apSouth, euWest, usWest, "ca-central-1"}, call(ctt.UnknownInstance, euWest, "198.51.100.99"), "InstanceMissing"},
		{"the detector's own region is always searched", []string{euWest}, call(ctt.InstanceID, homeRegion, ctt.PublicIP), "OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRegionWorld(tt.allowed, nil)
			res := w.processor().Process(t.Context(), []cloudtrail.Record{parse(t, tt.rec)})
			checkConservation(t, res.Stats)
			got := "OK"
			switch {
			case len(res.Skipped) == 1:
				got = "skipped"
				if s := res.Skipped[0]; s.Reason != detect.SkipOtherRegion || !errors.Is(s.Err, detect.ErrNotInSearchedRegions) || res.Stats.SkippedOtherRegion != 1 {
					t.Errorf("skipped %+v, stats %+v", s, res.Stats)
				}
			case len(res.Alerts) == 1:
				got = res.Alerts[0].Type
			case len(res.Undecided) > 0:
				got = "undecided: " + res.Undecided[0].Err.Error()
			}
			if got != tt.want {
				t.Errorf("outcome %s, want %s", got, tt.want)
			}
			if calls := w.calls(tt.rec.Identity.PrincipalID[len(ctt.RoleID)+1:]); calls[usWest] > 0 && !slices.Contains(tt.allowed, usWest) {
				t.Errorf("searched a region outside the allowed ones: %v", calls)
			}
		})
	}
}

func TestMultiRegionInventoryAsksFewRegions(t *testing.T) {
	t.Run("the record's region is asked first and alone when it knows the instance", func(t *testing.T) {
		w := newRegionWorld(nil, nil)
		inst, found, err := w.inv.LookupHint(t.Context(), euInstanceID, euWest)
		if err != nil || !found || inst.Region != euWest || inst.VpcID != euVPC {
			t.Fatalf("LookupHint = %+v, %v, %v", inst, found, err)
		}
		if calls := w.calls(euInstanceID); !maps1(calls, map[string]int{homeRegion: 1, euWest: 1}) {
			t.Errorf("source calls %v, want the home region and eu-west-1 once each", calls)
		}
	})
	t.Run("an instance found once is looked up directly in its region afterwards", func(t *testing.T) {
		w := newRegionWorld(nil, nil)
		if _, found, err := w.inv.Lookup(t.Context(), euInstanceID); err != nil || !found {
			t.Fatalf("first lookup: %v %v", found, err)
		}
		before := w.calls(euInstanceID)
		for range 3 {
			if inst, found, err := w.inv.Lookup(t.Context(), euInstanceID); err != nil || !found || inst.Region != euWest {
				t.Fatalf("lookup: %+v %v %v", inst, found, err)
			}
		}
		if after := w.calls(euInstanceID); !maps1(after, before) {
			t.Errorf("source calls went from %v to %v for cached lookups", before, after)
		}
		if s := w.inv.Stats(); s.Searches != 1 || s.LocatedLookups != 3 || s.RegionsCalls != 1 {
			t.Errorf("stats %+v, want one search and three located lookups", s)
		}
	})
	t.Run("the enabled regions are listed once", func(t *testing.T) {
		w := newRegionWorld(nil, nil)
		for _, id := range []string{ctt.UnknownInstance, "i-0123456789abcdef0", usWestInstanceID} {
			if _, _, err := w.inv.Lookup(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		if w.regionsCalls != 1 {
			t.Errorf("%d DescribeRegions, want 1", w.regionsCalls)
		}
	})
	t.Run("a failed region listing is not retried at once", func(t *testing.T) {
		w := newRegionWorld(nil, nil)
		w.regionsErr = errEC2
		for range 3 {
			if _, _, err := w.inv.Lookup(t.Context(), ctt.UnknownInstance); !errors.Is(err, detect.ErrRegionLookup) || !errors.Is(err, errEC2) {
				t.Fatalf("error %v, want ErrRegionLookup wrapping the EC2 error", err)
			}
		}
		if w.regionsCalls != 1 {
			t.Errorf("%d DescribeRegions, want 1", w.regionsCalls)
		}
	})
	t.Run("a batch is prefetched with one bulk call per region", func(t *testing.T) {
		w := newRegionWorld(nil, nil)
		var recs []cloudtrail.Record
		for i := range 20 {
			recs = append(recs,
				parse(t, call(euInstanceID, euWest, euPublicIP)),
				parse(t, iamCall(usWestInstanceID, usWestPublicIP)),
				parse(t, call(fmt.Sprintf("i-0%016x", 0xdead00+i), euWest, "198.51.100.99")))
		}
		res := w.processor().Process(t.Context(), recs)
		if res.Stats.Expected != 40 || res.Stats.Alerts != 20 || res.Stats.OtherRegion != 40 {
			t.Errorf("stats %+v, want 40 OK in other regions and 20 missing", res.Stats)
		}
		for r, s := range w.sources {
			s.mu.Lock()
			bulk := s.bulkCalls
			s.mu.Unlock()
			// eu-west-1 gets the hinted ids first, then the rest.
			if most := map[bool]int{true: 2, false: 1}[r == euWest]; bulk > most {
				t.Errorf("%s: %d bulk lookups, want at most %d", r, bulk, most)
			}
		}
	})
}

// maps1 reports whether two call counts are equal.
func maps1(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestProcessorJudgesTheRecordShapesOfOrganisationTrails runs the
// hand-written records of internal/cloudtrail/testdata (see its README for
// the AWS documentation they follow) through the multi-region world.
func TestProcessorJudgesTheRecordShapesOfOrganisationTrails(t *testing.T) {
	tests := []struct {
		file string
		want detect.Stats
	}{
		{"org_trail_member_instance_v1.09.json", detect.Stats{Events: 1, InstanceSessions: 1, SkippedOtherAccount: 1}},
		{"cross_account_kms_resource_owner_v1.09.json", detect.Stats{Events: 1, InstanceSessions: 1, Expected: 1}},
		{"global_iam_from_instance_v1.09.json", detect.Stats{Events: 1, InstanceSessions: 1, Expected: 1, OtherRegion: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "cloudtrail", "testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := cloudtrail.ParseRecord(raw)
			if err != nil {
				t.Fatal(err)
			}
			res := newRegionWorld(nil, nil).processor().Process(t.Context(), []cloudtrail.Record{rec})
			if res.Stats != tt.want || len(res.Alerts) != 0 {
				t.Errorf("stats %+v, %d alerts\nwant  %+v and none", res.Stats, len(res.Alerts), tt.want)
			}
		})
	}
}
