package detect

import (
	"context"
	"log/slog"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// Config configures a Processor.
type Config struct {
	// Policy holds the exceptions applied by Decide.
	Policy Policy
	// Self identifies the detector's own calls, which are skipped.
	Self Self
	// DedupeWindow is how long an alert suppresses repeats with the same
	// uniq_id (DefaultDedupeWindow if zero; negative disables
	// deduplication).
	DedupeWindow time.Duration
	// DedupeMaxEntries bounds the deduplication memory
	// (DefaultDedupeMaxEntries if zero).
	DedupeMaxEntries int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
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
	Expected          int // instance sessions from an expected address
	Rechecked         int // would-be alerts re-checked after an inventory refresh
	Alerts            int // alerts returned for publishing
	Suppressed        int // alerts suppressed as duplicates
	Undecided         int // records left undecided because the inventory failed
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
	s.Expected += o.Expected
	s.Rechecked += o.Rechecked
	s.Alerts += o.Alerts
	s.Suppressed += o.Suppressed
	s.Undecided += o.Undecided
}

// LogValue renders the stats as a log/slog group.
func (s Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("events", s.Events),
		slog.Int("prefiltered", s.Prefiltered),
		slog.Int("malformed", s.Malformed),
		slog.Int("ignored", s.Ignored),
		slog.Int("not_instance", s.NotInstance),
		slog.Int("instance_sessions", s.InstanceSessions),
		slog.Int("skipped_aws_service", s.SkippedAWSService),
		slog.Int("skipped_own", s.SkippedOwn),
		slog.Int("expected", s.Expected),
		slog.Int("rechecked", s.Rechecked),
		slog.Int("alerts", s.Alerts),
		slog.Int("suppressed", s.Suppressed),
		slog.Int("undecided", s.Undecided),
	)
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

// Result is the outcome of processing a batch.
type Result struct {
	Alerts    []Alert     // alerts to publish, deduplicated
	Undecided []Undecided // records to retry
	Stats     Stats
}

// Processor checks batches of decoded records. It is safe for concurrent
// use; its deduplication state lives as long as it does (create it once
// per Lambda container, outside the handler).
type Processor struct {
	inv    Inventory
	policy Policy
	self   Self
	dedupe *Deduper // nil when disabled
}

// NewProcessor returns a Processor that looks instances up in inv
// (typically a CachedInventory).
func NewProcessor(inv Inventory, cfg Config) *Processor {
	p := &Processor{inv: inv, policy: cfg.Policy, self: cfg.Self}
	if cfg.DedupeWindow >= 0 {
		p.dedupe = NewDeduper(cfg.DedupeWindow, cfg.DedupeMaxEntries, cfg.Now)
	}
	return p
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

// Process checks recs: it skips records that are not instance sessions,
// calls made by AWS services and the detector's own calls, looks the
// instances up, decides, re-checks would-be alerts after an inventory
// refresh, and deduplicates the alerts. Records whose instance cannot be
// looked up are returned as Undecided, never dropped.
func (p *Processor) Process(ctx context.Context, recs []cloudtrail.Record) Result {
	var res Result
	res.Stats.Events = len(recs)
	var todo []pending
	for i := range recs {
		rec := &recs[i]
		id, ok := IsInstanceSession(rec)
		switch {
		case !ok:
			res.Stats.NotInstance++
			continue
		case p.self.Matches(rec):
			res.Stats.InstanceSessions++
			res.Stats.SkippedOwn++
			continue
		case IsAWSServiceCall(rec):
			res.Stats.InstanceSessions++
			res.Stats.SkippedAWSService++
			continue
		}
		res.Stats.InstanceSessions++
		todo = append(todo, pending{rec: rec, id: id})
	}
	if len(todo) == 0 {
		return res
	}
	if pf, ok := p.inv.(Prefetcher); ok {
		ids := make([]string, 0, len(todo))
		for _, t := range todo {
			if t.id != "" {
				ids = append(ids, t.id)
			}
		}
		pf.Prefetch(ctx, ids)
	}
	for _, t := range todo {
		p.check(ctx, t, &res)
	}
	return res
}

// check decides one instance session and records the outcome in res.
func (p *Processor) check(ctx context.Context, t pending, res *Result) {
	var inst Instance
	var found bool
	if t.id != "" {
		var err error
		if inst, found, err = p.inv.Lookup(ctx, t.id); err != nil {
			res.Undecided = append(res.Undecided, Undecided{Record: t.rec, InstanceID: t.id, Err: err})
			res.Stats.Undecided++
			return
		}
	}
	v := p.policy.Decide(t.rec, inst, found)
	if r, ok := p.inv.(Refresher); ok && v.Kind != OK && t.id != "" {
		// The cache may predate an address change or the instance's
		// launch; the refresher's own rate limit keeps this cheap under
		// attack.
		res.Stats.Rechecked++
		if inst2, found2, err := r.Refresh(ctx, t.id); err == nil {
			inst, found = inst2, found2
			v = p.policy.Decide(t.rec, inst, found)
		}
	}
	if v.Kind == OK {
		res.Stats.Expected++
		return
	}
	if p.dedupe != nil && !p.dedupe.Allow(UniqID(t.rec, t.id)) {
		res.Stats.Suppressed++
		return
	}
	res.Alerts = append(res.Alerts, NewAlert(t.rec, t.id, inst, v))
	res.Stats.Alerts++
}

// Forget makes the deduplicator forget the alerts, so that a retry sends
// them again. Publish calls it for the alerts it fails to deliver.
func (p *Processor) Forget(alerts ...Alert) {
	if p.dedupe == nil {
		return
	}
	for i := range alerts {
		p.dedupe.Forget(alerts[i].UniqID)
	}
}

// Publish publishes alerts with PublishAll and makes the deduplicator
// forget the ones that failed, so that they are not suppressed when the
// caller retries the batch. It returns the failures, which the caller must
// send to a dead-letter queue or report as batch failures.
func (p *Processor) Publish(ctx context.Context, pub Publisher, alerts []Alert, rp RetryPolicy) []FailedAlert {
	failed := PublishAll(ctx, pub, alerts, rp)
	for i := range failed {
		p.Forget(failed[i].Alert)
	}
	return failed
}
