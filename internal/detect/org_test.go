package detect_test

// Organisation mode: every member record judged against its own account's
// inventory; accounts that cannot be read are alerts or retries, never OK.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

const (
	memberA = "777788889999"
	memberB = "222233334444"
	noStack = "555566667777" // a member account without the member role
	blipped = "888899990000" // a member account whose STS answer is throttled
)

// sharedID is an instance id that exists in the detector's account and in
// both members, with different addresses: a record judged against the
// wrong account's inventory gets the wrong verdict.
const sharedID = "i-0123456789abcdef0"

func instanceAt(ip string) detect.Instance {
	return detect.Instance{ID: sharedID, VpcID: "vpc-0aaaa", PublicIPs: addrs(ip), PrivateIPs: addrs("10.1.1.1")}
}

// memberRecord is a call made with the credentials of sharedID's instance
// in account, from src, in region.
func memberRecord(t *testing.T, account, src, region string, n int) cloudtrail.Record {
	t.Helper()
	e := ctt.Event{
		Identity:    ctt.InstanceIdentity(sharedID, "2.0").InAccount(account),
		EventSource: "s3.amazonaws.com", EventName: "ListBuckets", Region: region, SourceIP: src,
		RecipientAccount: account, EventID: fmt.Sprintf("0c5a5b52-8b1a-4f0e-9c73-%012d", n),
	}
	r, err := cloudtrail.ParseRecord(e.JSON())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeOrg is an AccountInventories over static inventories.
type fakeOrg struct {
	mu    sync.Mutex
	invs  map[string]detect.Inventory
	err   map[string]error
	asked map[string]int
	trims int
}

func (f *fakeOrg) Inventory(_ context.Context, account string) (detect.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[account]++
	if err := f.err[account]; err != nil {
		return nil, err
	}
	inv, ok := f.invs[account]
	if !ok {
		return nil, fmt.Errorf("%w: %s", detect.ErrAccountDenied, account)
	}
	return inv, nil
}

func (f *fakeOrg) Trim() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trims++
}

func newFakeOrg() *fakeOrg {
	return &fakeOrg{
		invs: map[string]detect.Inventory{
			memberA: detect.StaticInventory{sharedID: instanceAt("198.51.100.1")},
			memberB: detect.StaticInventory{sharedID: instanceAt("198.51.100.2")},
		},
		err:   map[string]error{blipped: fmt.Errorf("%w: Throttling: Rate exceeded", detect.ErrAccountUnavailable)},
		asked: map[string]int{},
	}
}

func TestOrganisationModeJudgesEachRecordAgainstItsAccount(t *testing.T) {
	own := detect.StaticInventory{sharedID: instanceAt("198.51.100.0")}
	org := newFakeOrg()
	p := detect.NewProcessor(own, detect.Config{Account: ctt.Account, Org: org, Region: "eu-west-1"})
	recs := []cloudtrail.Record{
		memberRecord(t, memberA, "198.51.100.1", "eu-west-1", 1), // A from A's address: OK
		memberRecord(t, memberA, "198.51.100.2", "eu-west-1", 2), // A from B's address: BadSource
		memberRecord(t, memberB, "198.51.100.2", "us-east-2", 3), // B from B's address: OK
		memberRecord(t, memberB, "198.51.100.1", "us-east-2", 4), // B from A's address: BadSource
		memberRecord(t, ctt.Account, "198.51.100.0", "eu-west-1", 5),
		memberRecord(t, ctt.Account, "198.51.100.1", "eu-west-1", 6), // own from A's address: BadSource
		memberRecord(t, noStack, "198.51.100.3", "eu-west-1", 7),
		memberRecord(t, noStack, "198.51.100.4", "eu-west-1", 8), // same account: one alert
		memberRecord(t, blipped, "198.51.100.5", "eu-west-1", 9),
	}
	res := p.Process(t.Context(), recs)

	t.Run("each record is judged against its own account's inventory", func(t *testing.T) {
		var got []string
		for _, a := range res.Alerts {
			got = append(got, a.Type+" "+a.Account+" "+a.Region+" "+a.SourceIP)
		}
		want := []string{
			"BadSource " + ctt.Account + " eu-west-1 198.51.100.1",
			"BadSource " + memberB + " us-east-2 198.51.100.1",
			"AccountNotCovered " + noStack + " eu-west-1 198.51.100.3",
			"BadSource " + memberA + " eu-west-1 198.51.100.2",
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("alerts\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("an account whose member role cannot be assumed raises one AccountNotCovered alert naming it", func(t *testing.T) {
		var nc []detect.Alert
		for _, a := range res.Alerts {
			if a.Type == "AccountNotCovered" {
				nc = append(nc, a)
			}
		}
		if len(nc) != 1 || nc[0].UniqID != noStack+"-AccountNotCovered" || nc[0].Severity != detect.SeverityMedium ||
			nc[0].Account != noStack || nc[0].Region != "eu-west-1" || nc[0].InstanceID != sharedID {
			t.Fatalf("AccountNotCovered alerts %+v", nc)
		}
		if res.Stats.NotCovered != 2 || res.Stats.Suppressed != 1 {
			t.Errorf("NotCovered %d, Suppressed %d: want both records counted, the second suppressed", res.Stats.NotCovered, res.Stats.Suppressed)
		}
	})
	t.Run("an account whose credentials fail for now leaves its records undecided, never OK", func(t *testing.T) {
		if len(res.Undecided) != 1 || res.Stats.AccountAccessFailed != 1 || !errors.Is(res.Undecided[0].Err, detect.ErrAccountUnavailable) {
			t.Errorf("undecided %+v, stats %+v", res.Undecided, res.Stats)
		}
	})
	t.Run("every instance session is accounted for", func(t *testing.T) {
		checkConservation(t, res.Stats)
		if res.Stats.MemberRecords != 7 || res.Stats.Accounts != 5 || res.Stats.Expected != 3 || res.Stats.SkippedOtherAccount != 0 {
			t.Errorf("stats %+v", res.Stats)
		}
	})
	t.Run("each account's inventory is asked once per batch and the organisation is trimmed", func(t *testing.T) {
		for _, a := range []string{memberA, memberB, noStack, blipped} {
			if org.asked[a] != 1 {
				t.Errorf("account %s asked %d times", a, org.asked[a])
			}
		}
		if org.asked[ctt.Account] != 0 {
			t.Errorf("the detector's own account went through the organisation")
		}
		if org.trims != 1 {
			t.Errorf("%d trims", org.trims)
		}
	})
	t.Run("the merged results do not depend on the order the accounts finished in", func(t *testing.T) {
		p2 := detect.NewProcessor(own, detect.Config{Account: ctt.Account, Org: newFakeOrg(), DedupeWindow: -1, AccountWorkers: 1})
		p3 := detect.NewProcessor(own, detect.Config{Account: ctt.Account, Org: newFakeOrg(), DedupeWindow: -1, AccountWorkers: 16})
		a, b := p2.Process(t.Context(), recs), p3.Process(t.Context(), recs)
		for i := range a.Alerts {
			if a.Alerts[i].EventID != b.Alerts[i].EventID {
				t.Fatalf("alert %d: %s vs %s", i, a.Alerts[i].EventID, b.Alerts[i].EventID)
			}
		}
		if a.Alerts[0].Account != ctt.Account {
			t.Errorf("the detector's own account is not first: %s", a.Alerts[0].Account)
		}
	})
}

func TestOrganisationModeCountsRecipientMismatches(t *testing.T) {
	rec := memberRecord(t, memberA, "198.51.100.1", "eu-west-1", 1)
	rec.RecipientAccountID = memberB // B's copy of A's call on B's resource
	org := newFakeOrg()
	res := detect.NewProcessor(detect.StaticInventory{}, detect.Config{Account: ctt.Account, Org: org}).Process(t.Context(), []cloudtrail.Record{rec})
	if res.Stats.RecipientMismatch != 1 || res.Stats.Expected != 1 || org.asked[memberA] != 1 || org.asked[memberB] != 0 {
		t.Errorf("stats %+v, asked %v: want the record judged against the credentials' account (A) and counted", res.Stats, org.asked)
	}
	// Not in organisation mode nothing changes: skipped and counted as before.
	res = detect.NewProcessor(detect.StaticInventory{}, detect.Config{Account: ctt.Account}).Process(t.Context(), []cloudtrail.Record{rec})
	if res.Stats.SkippedOtherAccount != 1 || res.Stats.RecipientMismatch != 0 || res.Stats.MemberRecords != 0 {
		t.Errorf("without Org: stats %+v", res.Stats)
	}
}

// sized is a StaticInventory that reports a size.
type sized struct {
	detect.StaticInventory
	n int
}

func (s sized) Len() int { return s.n }

func TestOrganizationIsBounded(t *testing.T) {
	built := map[string]int{}
	access := map[string]error{}
	o := detect.NewOrganization(detect.OrgOptions{
		Access: func(_ context.Context, account string) error { return access[account] },
		Inventory: func(account string) detect.Inventory {
			built[account]++
			return sized{n: 100}
		},
		MaxAccounts:  3,
		MaxInstances: 250,
	})
	acct := func(i int) string { return fmt.Sprintf("1000000000%02d", i) }
	for i := range 5 {
		if _, err := o.Inventory(t.Context(), acct(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s := o.Stats(); s.Accounts != 3 || s.Evicted != 2 || s.Built != 5 {
		t.Errorf("after 5 accounts with MaxAccounts 3: %+v", s)
	}
	// The most recent account is kept and reused.
	if _, err := o.Inventory(t.Context(), acct(4)); err != nil || built[acct(4)] != 1 {
		t.Errorf("account 4 built %d times, err %v", built[acct(4)], err)
	}
	o.Trim() // 3 accounts of 100 entries: 300 > 250, the least recently used goes
	if s := o.Stats(); s.Accounts != 2 || s.Entries != 200 || s.PeakEntries != 300 {
		t.Errorf("after Trim: %+v", s)
	}
	// An evicted account is built again on its next use.
	if _, err := o.Inventory(t.Context(), acct(0)); err != nil || built[acct(0)] != 2 {
		t.Errorf("account 0 built %d times, err %v", built[acct(0)], err)
	}
	// Access errors: denied stays denied, anything else is unavailable.
	access[acct(7)] = fmt.Errorf("%w: AccessDenied", detect.ErrAccountDenied)
	access[acct(8)] = errors.New("dial tcp: i/o timeout")
	if _, err := o.Inventory(t.Context(), acct(7)); !errors.Is(err, detect.ErrAccountDenied) {
		t.Errorf("denied account: %v", err)
	}
	if _, err := o.Inventory(t.Context(), acct(8)); !errors.Is(err, detect.ErrAccountUnavailable) {
		t.Errorf("failing account: %v", err)
	}
	if _, err := o.Inventory(t.Context(), "12345"); !errors.Is(err, detect.ErrAccountDenied) {
		t.Errorf("not an account id: %v", err)
	}
	if built[acct(7)]+built[acct(8)] != 0 {
		t.Errorf("inventories built for accounts that cannot be read: %v", built)
	}
	// A single account bigger than the budget is kept: it is in use.
	big := detect.NewOrganization(detect.OrgOptions{
		Access:       func(context.Context, string) error { return nil },
		Inventory:    func(string) detect.Inventory { return sized{n: 1000} },
		MaxInstances: 10,
	})
	_, _ = big.Inventory(t.Context(), acct(1))
	big.Trim()
	if s := big.Stats(); s.Accounts != 1 {
		t.Errorf("the only (most recent) account was evicted: %+v", s)
	}
}

func TestMultiRegionInventoryLenCountsItsCaches(t *testing.T) {
	clock := newClock()
	home := detect.NewCachedInventory(world(), detect.CacheOptions{Now: clock.Now})
	other := detect.NewCachedInventory(detect.StaticInventory{"i-0b0b0b0b0b0b0b0b0": {ID: "i-0b0b0b0b0b0b0b0b0"}}, detect.CacheOptions{Now: clock.Now})
	m := detect.NewMultiRegionInventory(home, detect.RegionOptions{
		HomeRegion: "eu-west-1",
		Regions:    func(context.Context) ([]string, error) { return []string{"eu-west-1", "us-east-1"}, nil },
		Inventory:  func(string) detect.Inventory { return other },
		Now:        clock.Now,
	})
	_, _, _ = m.Lookup(t.Context(), ctt.InstanceID)
	_, _, _ = m.Lookup(t.Context(), "i-0b0b0b0b0b0b0b0b0")
	// home: the instance and the other region's id (not found); other: that
	// id; one remembered location.
	if n := m.Len(); n != 4 {
		t.Errorf("Len = %d, want 4", n)
	}
}

func TestOrganisationModeForgetsWhatItDeduplicated(t *testing.T) {
	p := detect.NewProcessor(detect.StaticInventory{}, detect.Config{Account: ctt.Account, Org: newFakeOrg()})
	recs := []cloudtrail.Record{memberRecord(t, memberA, "203.0.113.9", "eu-west-1", 1)}
	first := p.Process(t.Context(), recs)
	if len(first.Alerts) != 1 || p.Process(t.Context(), recs).Stats.Suppressed != 1 {
		t.Fatalf("first %+v: want one alert, then a suppressed repeat", first.Alerts)
	}
	p.Forget(first.Alerts...) // it reached neither SNS nor the queue
	if again := p.Process(t.Context(), recs); len(again.Alerts) != 1 {
		t.Errorf("after Forget the retry raises nothing: %+v", again.Stats)
	}
}
