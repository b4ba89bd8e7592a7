package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// Config configures a Processor.
type Config struct {
	// Policy holds the exceptions applied by Decide.
	Policy Policy
	// Self identifies the detector's own calls, which are skipped.
	Self Self
	// Account is the detector's account id. Instance sessions of other
	// accounts are skipped and counted (see "Account attribution"), or in
	// organisation mode (Org) judged against their own account's
	// inventory; "" judges every record as the detector's own (SetAccount
	// can set it later).
	Account string
	// Region is the detector's region; it only serves to count the
	// records judged against an instance of another region (OtherRegion).
	Region string
	// DedupeWindow is how long an alert suppresses repeats with the same
	// uniq_id (DefaultDedupeWindow if zero; negative disables
	// deduplication).
	DedupeWindow time.Duration
	// DedupeMaxEntries bounds the deduplication memory
	// (DefaultDedupeMaxEntries if zero).
	DedupeMaxEntries int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Org turns on organisation mode (see "Organisation mode"): instance
	// sessions of other accounts are judged against their own account's
	// inventory, which Org gives, instead of being skipped. It requires
	// Account. Nil: records of other accounts are skipped and counted, as
	// before.
	Org AccountInventories
	// AccountWorkers bounds the accounts of one batch decided concurrently
	// in organisation mode (DefaultAccountWorkers).
	AccountWorkers int
	// Shadow, when set, also sees every judged record with its instance
	// (shadow mode: a proposed lock or SCP evaluated in report-only mode,
	// internal/shadowrun). It must be safe for concurrent use.
	Shadow Observer
}

// Observer sees every record the processor judged, with what the inventory
// knows of its instance (found is false for an unknown instance).
type Observer interface {
	Observe(rec *cloudtrail.Record, inst Instance, found bool)
}

// Stats counts what happened to a batch. Fields are additive across
// batches (see Add).
type Stats struct {
	Events      int // CloudTrail records seen by the decoder (ProcessBatch) or passed to Process
	Prefiltered int // records the decoder's pre-filter rejected without decoding
	Malformed   int // items the decoder could not decode
	Ignored     int // control messages and non-CloudTrail events

	NotInstance       int // decoded records that are not instance sessions
	InstanceSessions  int // decoded records made with instance credentials
	SkippedAWSService int // instance sessions used by an AWS service on the instance's behalf
	SkippedOwn        int // the detector's own calls
	// SkippedOtherAccount counts instance sessions of another account's
	// credentials (an organisation trail), which the inventory cannot
	// judge.
	SkippedOtherAccount int
	// SkippedUnattributable counts instance sessions whose account fields
	// are garbled or contradictory (see "Account attribution").
	SkippedUnattributable int
	// SkippedOtherRegion counts instance sessions whose instance is in no
	// searched region while the region restriction leaves enabled regions
	// unsearched (ErrNotInSearchedRegions).
	SkippedOtherRegion int
	Expected           int // instance sessions from an expected address
	Rechecked          int // would-be alerts re-checked after an inventory refresh
	Alerts             int // alerts returned for publishing
	Suppressed         int // alerts suppressed as duplicates
	Undecided          int // records left undecided because the inventory failed
	// RegionLookupFailed counts the undecided records whose instance is not
	// in the detector's region and could not be looked up in the other
	// regions (ErrRegionLookup); they are part of Undecided.
	RegionLookupFailed int
	// OtherRegion counts the records judged against an instance found in
	// another region than Config.Region (part of Expected, Alerts and
	// Suppressed).
	OtherRegion int

	// Organisation mode only (zero otherwise; see "Organisation mode"):

	// MemberRecords counts the instance sessions of other accounts judged
	// (or attempted) against their own account's inventory.
	MemberRecords int
	// NotCovered counts the member records whose account's member role
	// cannot be assumed (AccessDenied): each is part of an
	// AccountNotCovered alert (Alerts or Suppressed).
	NotCovered int
	// AccountAccessFailed counts the member records left undecided because
	// their account's credentials could not be obtained (throttling, STS
	// errors); they are part of Undecided.
	AccountAccessFailed int
	// RecipientMismatch counts the instance sessions whose
	// recipientAccountId is not the credentials' account (a call on
	// another account's resource, or an oddity); they are judged against
	// the credentials' account.
	RecipientMismatch int
	// Accounts counts the distinct accounts of the batch's instance
	// sessions judged (the detector's own included).
	Accounts int
}

// Add accumulates o into s.
func (s *Stats) Add(o Stats) {
	s.Events += o.Events
	s.Prefiltered += o.Prefiltered
	s.Malformed += o.Malformed
	s.Ignored += o.Ignored
	s.NotInstance += o.NotInstance
	s.InstanceSessions += o.InstanceSessions
	s.SkippedAWSService += o.SkippedAWSService
	s.SkippedOwn += o.SkippedOwn
	s.SkippedOtherAccount += o.SkippedOtherAccount
	s.SkippedUnattributable += o.SkippedUnattributable
	s.SkippedOtherRegion += o.SkippedOtherRegion
	s.Expected += o.Expected
	s.Rechecked += o.Rechecked
	s.Alerts += o.Alerts
	s.Suppressed += o.Suppressed
	s.Undecided += o.Undecided
	s.RegionLookupFailed += o.RegionLookupFailed
	s.OtherRegion += o.OtherRegion
	s.MemberRecords += o.MemberRecords
	s.NotCovered += o.NotCovered
	s.AccountAccessFailed += o.AccountAccessFailed
	s.RecipientMismatch += o.RecipientMismatch
	s.Accounts += o.Accounts
}

// LogValue renders the stats as a log/slog group; the organisation
// mode's counts appear only when one of them is not zero.
func (s Stats) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Int("events", s.Events),
		slog.Int("prefiltered", s.Prefiltered),
		slog.Int("malformed", s.Malformed),
		slog.Int("ignored", s.Ignored),
		slog.Int("not_instance", s.NotInstance),
		slog.Int("instance_sessions", s.InstanceSessions),
		slog.Int("skipped_aws_service", s.SkippedAWSService),
		slog.Int("skipped_own", s.SkippedOwn),
		slog.Int("skipped_other_account", s.SkippedOtherAccount),
		slog.Int("skipped_unattributable", s.SkippedUnattributable),
		slog.Int("skipped_other_region", s.SkippedOtherRegion),
		slog.Int("expected", s.Expected),
		slog.Int("rechecked", s.Rechecked),
		slog.Int("alerts", s.Alerts),
		slog.Int("suppressed", s.Suppressed),
		slog.Int("undecided", s.Undecided),
		slog.Int("region_lookup_failed", s.RegionLookupFailed),
		slog.Int("other_region", s.OtherRegion),
	}
	if s.MemberRecords+s.NotCovered+s.AccountAccessFailed+s.RecipientMismatch+s.Accounts > 0 {
		attrs = append(attrs,
			slog.Int("member_records", s.MemberRecords),
			slog.Int("not_covered", s.NotCovered),
			slog.Int("account_access_failed", s.AccountAccessFailed),
			slog.Int("recipient_mismatch", s.RecipientMismatch),
			slog.Int("accounts", s.Accounts),
		)
	}
	return slog.GroupValue(attrs...)
}

// Undecided is a record that could not be checked because the inventory
// failed. The caller must not treat it as processed: fail the invocation
// (CloudWatch Logs, EventBridge: Lambda retries it) or report its
// SequenceNumber as a batch item failure (Kinesis).
type Undecided struct {
	Record     *cloudtrail.Record
	InstanceID string
	Err        error
}

// SkipReason says why an instance session was skipped without a
// decision.
type SkipReason string

// Skip reasons (the metric names of the counts).
const (
	SkipOtherAccount   SkipReason = "SkippedOtherAccount"
	SkipUnattributable SkipReason = "SkippedUnattributable"
	SkipOtherRegion    SkipReason = "SkippedOtherRegion"
)

// Skipped is an instance session the processor could not judge and
// deliberately did not: another account's credentials, unattributable
// account fields, or an instance outside the searched regions. The caller
// logs it; retrying cannot change the outcome.
type Skipped struct {
	Record     *cloudtrail.Record
	InstanceID string
	Reason     SkipReason
	// Account is the credentials' account as the record names it (for
	// SkipUnattributable, the offending value).
	Account string
	// Err explains SkipOtherRegion.
	Err error
}

// Result is the outcome of processing a batch.
type Result struct {
	Alerts    []Alert     // alerts to publish, deduplicated
	Undecided []Undecided // records to retry
	Skipped   []Skipped   // instance sessions skipped without a decision
	Stats     Stats
	// Accounts are, in organisation mode, the accounts whose records were
	// decided (or tried), sorted, the detector's own included.
	Accounts []string
}

// Processor checks batches of decoded records. It is safe for concurrent
// use; its deduplication state lives as long as it does (create it once
// per Lambda container, outside the handler).
type Processor struct {
	inv     Inventory
	policy  Policy
	self    Self
	region  string
	dedupe  *Deduper           // nil when disabled
	org     AccountInventories // nil: not in organisation mode
	workers int
	shadow  Observer // nil: no shadow mode

	accountMu sync.RWMutex
	account   string
}

// NewProcessor returns a Processor that looks instances up in inv
// (typically a MultiRegionInventory over CachedInventories).
func NewProcessor(inv Inventory, cfg Config) *Processor {
	p := &Processor{inv: inv, policy: cfg.Policy, self: cfg.Self, region: cfg.Region, account: cfg.Account,
		org: cfg.Org, workers: cfg.AccountWorkers, shadow: cfg.Shadow}
	if p.workers <= 0 {
		p.workers = DefaultAccountWorkers
	}
	if cfg.DedupeWindow >= 0 {
		p.dedupe = NewDeduper(cfg.DedupeWindow, cfg.DedupeMaxEntries, cfg.Now)
	}
	return p
}

// SetAccount sets the detector's account (Config.Account) when it was not
// known at construction, e.g. from the invoked function's ARN.
func (p *Processor) SetAccount(account string) {
	p.accountMu.Lock()
	defer p.accountMu.Unlock()
	p.account = account
}

// Account returns the detector's account, "" if unknown.
func (p *Processor) Account() string {
	p.accountMu.RLock()
	defer p.accountMu.RUnlock()
	return p.account
}

// ProcessBatch processes the records of a decoded batch and carries the
// decoder's counters into the stats.
func (p *Processor) ProcessBatch(ctx context.Context, b *cloudtrail.Batch) Result {
	r := p.Process(ctx, b.Records)
	r.Stats.Events = b.Events
	r.Stats.Prefiltered = b.Filtered
	r.Stats.Malformed = b.Malformed
	r.Stats.Ignored = b.Ignored
	return r
}

// pending is an instance session waiting for its inventory lookup.
type pending struct {
	rec *cloudtrail.Record
	id  string
}

// group is the instance sessions of one account, judged against that
// account's inventory.
type group struct {
	account string // "" for the detector's own account
	todo    []pending
}

// Process checks recs: it skips records that are not instance sessions,
// the detector's own calls, other accounts' instance sessions (unless in
// organisation mode) and calls made by AWS services, looks the instances
// up, decides, re-checks would-be alerts after an inventory refresh, and
// deduplicates the alerts. Records whose instance cannot be looked up are
// returned as Undecided, and records deliberately not judged as Skipped:
// none is dropped.
//
// The inventory is asked as little as possible: the batch's instances are
// prefetched together (a Prefetcher, or a RegionHinter), each instance is
// looked up once whatever the number of its records, and the would-be
// alerts' instances are refreshed together (a RefreshPrefetcher) and then
// once each. A refresh that fails leaves the verdict as it was: the alert
// stands.
//
// In organisation mode the records are grouped by the credentials'
// account, each group is decided against its account's inventory
// (Config.Org; the detector's own against its own), up to
// Config.AccountWorkers accounts at a time, and the results are merged in
// a stable order: the detector's own account first, then by account id.
func (p *Processor) Process(ctx context.Context, recs []cloudtrail.Record) Result {
	var res Result
	res.Stats.Events = len(recs)
	self := p.Account()
	own := &group{}
	var members map[string]*group
	for i := range recs {
		rec := &recs[i]
		id, ok := IsInstanceSession(rec)
		if !ok {
			res.Stats.NotInstance++
			continue
		}
		res.Stats.InstanceSessions++
		if p.self.Matches(rec) {
			res.Stats.SkippedOwn++
			continue
		}
		account, v := CheckAccount(rec, self)
		switch {
		case v == AccountUnattributable:
			res.Stats.SkippedUnattributable++
			res.Skipped = append(res.Skipped, Skipped{Record: rec, InstanceID: id, Reason: SkipUnattributable, Account: account})
			continue
		case v == AccountOther && p.org == nil:
			res.Stats.SkippedOtherAccount++
			res.Skipped = append(res.Skipped, Skipped{Record: rec, InstanceID: id, Reason: SkipOtherAccount, Account: account})
			continue
		}
		if IsAWSServiceCall(rec) {
			res.Stats.SkippedAWSService++
			continue
		}
		if p.org != nil && account != "" && rec.RecipientAccountID != "" && rec.RecipientAccountID != account {
			res.Stats.RecipientMismatch++
		}
		g := own
		if v == AccountOther {
			res.Stats.MemberRecords++
			if members == nil {
				members = make(map[string]*group)
			}
			if g = members[account]; g == nil {
				g = &group{account: account}
				members[account] = g
			}
		}
		g.todo = append(g.todo, pending{rec: rec, id: id})
	}
	if p.org == nil {
		if len(own.todo) > 0 {
			p.decide(ctx, p.inv, own.todo, &res)
		}
		return res
	}
	groups := make([]*group, 0, len(members)+1)
	if len(own.todo) > 0 {
		groups = append(groups, own)
	}
	groups = append(groups, slices.SortedFunc(maps.Values(members), func(a, b *group) int { return strings.Compare(a.account, b.account) })...)
	res.Stats.Accounts = len(groups)
	for _, g := range groups {
		a := g.account
		if a == "" {
			a = self
		}
		res.Accounts = append(res.Accounts, a)
	}
	slices.Sort(res.Accounts)
	parts := make([]Result, len(groups))
	sem := make(chan struct{}, p.workers)
	var wg sync.WaitGroup
	for i, g := range groups {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.decideAccount(ctx, g, &parts[i])
		})
	}
	wg.Wait()
	for i := range parts {
		res.Alerts = append(res.Alerts, parts[i].Alerts...)
		res.Undecided = append(res.Undecided, parts[i].Undecided...)
		res.Skipped = append(res.Skipped, parts[i].Skipped...)
		res.Stats.Add(parts[i].Stats)
	}
	if t, ok := p.org.(interface{ Trim() }); ok {
		t.Trim()
	}
	return res
}

// decideAccount decides the records of one account of the organisation
// against its inventory (the detector's own for g.account ""). An account
// whose inventory cannot be read makes its records AccountNotCovered
// alerts (ErrAccountDenied) or Undecided (anything else); see
// "Organisation mode".
func (p *Processor) decideAccount(ctx context.Context, g *group, res *Result) {
	if g.account == "" {
		p.decide(ctx, p.inv, g.todo, res)
		return
	}
	inv, err := p.org.Inventory(ctx, g.account)
	switch {
	case err == nil:
		p.decide(ctx, inv, g.todo, res)
	case errors.Is(err, ErrAccountDenied):
		for _, t := range g.todo {
			res.Stats.NotCovered++
			p.settle(judged{t: t, v: Verdict{Kind: AccountNotCovered, Severity: SeverityMedium,
				Reason: "the member role of account " + g.account + " cannot be assumed: " + err.Error()}}, res)
		}
	default:
		if !errors.Is(err, ErrAccountUnavailable) {
			err = fmt.Errorf("%w: %w", ErrAccountUnavailable, err)
		}
		for _, t := range g.todo {
			res.Stats.AccountAccessFailed++
			res.Stats.Undecided++
			res.Undecided = append(res.Undecided, Undecided{Record: t.rec, InstanceID: t.id, Err: err})
		}
	}
}

// decide looks the instances of todo up in inv, decides, re-checks the
// would-be alerts after a refresh and settles every record in res.
func (p *Processor) decide(ctx context.Context, inv Inventory, todo []pending, res *Result) {
	ids := make([]string, 0, len(todo))
	hints := make([]string, 0, len(todo))
	for _, t := range todo {
		if t.id != "" {
			ids = append(ids, t.id)
			hints = append(hints, t.rec.AWSRegion)
		}
	}
	if h, ok := inv.(RegionHinter); ok {
		h.PrefetchHints(ctx, ids, hints)
	} else if pf, ok := inv.(Prefetcher); ok {
		pf.Prefetch(ctx, ids)
	}
	looked := make(map[string]lookup)
	var recheck []judged
	for _, t := range todo {
		j, ok := p.judge(ctx, inv, t, looked, res)
		switch {
		case !ok:
		case j.v.Kind == OK:
			p.settle(j, res)
		default:
			recheck = append(recheck, j)
		}
	}
	p.recheck(ctx, inv, recheck, res)
	for _, j := range recheck {
		p.settle(j, res)
	}
}

// lookup is the inventory's answer about one instance.
type lookup struct {
	inst  Instance
	found bool
	err   error
}

// judged is an instance session with its verdict.
type judged struct {
	t     pending
	inst  Instance
	found bool
	v     Verdict
}

// judge looks the instance of t up (once per instance and batch: looked
// remembers the answers) and decides. ok is false when the record was
// left undecided or skipped, which res records.
func (p *Processor) judge(ctx context.Context, inv Inventory, t pending, looked map[string]lookup, res *Result) (j judged, ok bool) {
	j.t = t
	if t.id != "" {
		l, done := looked[t.id]
		if !done {
			if h, isHinter := inv.(RegionHinter); isHinter {
				l.inst, l.found, l.err = h.LookupHint(ctx, t.id, t.rec.AWSRegion)
			} else {
				l.inst, l.found, l.err = inv.Lookup(ctx, t.id)
			}
			looked[t.id] = l
		}
		switch err := l.err; {
		case errors.Is(err, ErrNotInSearchedRegions):
			res.Skipped = append(res.Skipped, Skipped{Record: t.rec, InstanceID: t.id, Reason: SkipOtherRegion,
				Account: accountOf(t.rec), Err: err})
			res.Stats.SkippedOtherRegion++
			return j, false
		case err != nil:
			res.Undecided = append(res.Undecided, Undecided{Record: t.rec, InstanceID: t.id, Err: err})
			res.Stats.Undecided++
			if errors.Is(err, ErrRegionLookup) {
				res.Stats.RegionLookupFailed++
			}
			return j, false
		}
		j.inst, j.found = l.inst, l.found
	}
	j.v = p.policy.Decide(t.rec, j.inst, j.found)
	return j, true
}

// recheck decides the would-be alerts js again after an inventory
// refresh: the cache may predate an address change or the instance's
// launch. Their instances are refreshed together when the inventory is a
// RefreshPrefetcher, then each at most once; the refresher's own rate
// limits keep this cheap under attack, and a failed refresh keeps the
// verdict.
func (p *Processor) recheck(ctx context.Context, inv Inventory, js []judged, res *Result) {
	r, ok := inv.(Refresher)
	if !ok || len(js) == 0 {
		return
	}
	var ids []string
	seen := make(map[string]bool, len(js))
	for _, j := range js {
		if j.t.id != "" && !seen[j.t.id] {
			seen[j.t.id] = true
			ids = append(ids, j.t.id)
		}
	}
	if rp, ok := inv.(RefreshPrefetcher); ok && len(ids) > 0 {
		rp.PrefetchRefresh(ctx, ids)
	}
	refreshed := make(map[string]lookup, len(ids))
	for i := range js {
		j := &js[i]
		if j.t.id == "" {
			continue
		}
		res.Stats.Rechecked++
		l, done := refreshed[j.t.id]
		if !done {
			l.inst, l.found, l.err = r.Refresh(ctx, j.t.id)
			refreshed[j.t.id] = l
		}
		if l.err == nil {
			j.inst, j.found = l.inst, l.found
			j.v = p.policy.Decide(j.t.rec, j.inst, j.found)
		}
	}
}

// settle records the outcome of a decided record in res: OK, or an alert
// unless a duplicate.
func (p *Processor) settle(j judged, res *Result) {
	if p.shadow != nil && j.v.Kind != AccountNotCovered {
		p.shadow.Observe(j.t.rec, j.inst, j.found)
	}
	if j.found && p.region != "" && j.inst.Region != "" && j.inst.Region != p.region {
		res.Stats.OtherRegion++
	}
	if j.v.Kind == OK {
		res.Stats.Expected++
		return
	}
	if p.dedupe != nil && !p.dedupe.Allow(p.dedupeKey(accountOf(j.t.rec), alertKey(j.t.rec, j.t.id, j.v.Kind))) {
		res.Stats.Suppressed++
		return
	}
	res.Alerts = append(res.Alerts, NewAlert(j.t.rec, j.t.id, j.inst, j.v))
	res.Stats.Alerts++
}

// Forget makes the deduplicator forget the alerts, so that a retry sends
// them again. Call it for the alerts that reached neither the topic nor
// the dead-letter queue, and only for those: an alert in the dead-letter
// queue is as good as delivered (it is redriven from there), and
// forgetting it would send every repeat of the attack to the queue again
// for as long as the topic is down.
func (p *Processor) Forget(alerts ...Alert) {
	if p.dedupe == nil {
		return
	}
	for i := range alerts {
		p.dedupe.Forget(p.dedupeKey(alerts[i].Account, alerts[i].UniqID))
	}
}

// dedupeKey is the deduplication key of an alert of account with
// uniqID: uniqID, and in organisation mode account/uniqID, so that an
// instance id that two accounts share (a session name made up to look
// like another account's instance) cannot suppress the other account's
// alert.
func (p *Processor) dedupeKey(account, uniqID string) string {
	if p.org == nil {
		return uniqID
	}
	return account + "/" + uniqID
}

// Publish publishes alerts with PublishAll and returns the failures, which
// the caller must send to a dead-letter queue or report as batch
// failures. The deduplicator keeps remembering the failed alerts: the
// caller calls Forget for those that the dead-letter queue did not take
// either, so that the retry of the batch raises them again.
func (p *Processor) Publish(ctx context.Context, pub Publisher, alerts []Alert, rp RetryPolicy) []FailedAlert {
	return PublishAll(ctx, pub, alerts, rp)
}
