package detectorfn

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
)

// Delivery guarantees
//
// Nothing is lost; the handler only ever chooses between delivering
// something and making Lambda deliver the event again:
//
//   - Alerts are published to SNS with detect's bounded retries. An alert
//     that still fails goes to the dead-letter queue (a DeadLetter message
//     with the alert and the last error). If that fails too, the
//     invocation fails (CloudWatch Logs, EventBridge: Lambda retries the
//     event, then puts it in its own dead-letter queue, the same queue) or
//     the alert's Kinesis record is reported in BatchItemFailures.
//
//   - For deduplication a dead-lettered alert counts as delivered: it is
//     redriven from the queue, and the repeats of the attack within the
//     window are suppressed as if it had been published, so that an SNS
//     outage yields one dead letter per alert, not one per repeat. Only
//     an alert that reached neither SNS nor the queue is forgotten by the
//     deduplicator, so that the retry raises it again.
//
//   - Undecided records (the inventory could not be asked: EC2 throttling
//     or outage) are retried, not dead-lettered: the invocation fails, or
//     for Kinesis their records are reported in BatchItemFailures. An
//     inventory failure is transient and a retry a minute later can
//     decide the record, whereas a raw record in the queue needs a human.
//     The alerts that were decided are published first; the retry does
//     not publish them again from the same container (deduplication), and
//     after Lambda's retries the whole event lands in the dead-letter
//     queue.
//
//   - Malformed items (a log event or a Kinesis record that does not
//     decode) are counted (Malformed) and logged, and the rest of the
//     batch goes on: retrying cannot fix them. A payload that is unusable
//     as a whole (not JSON, bad base64 or gzip, an unknown shape) fails
//     the invocation, so that it ends up in the dead-letter queue.
//
// Retried invocations can produce duplicate alerts (another container, or
// an alert dead-lettered before the retry); subscribers deduplicate on
// uniq_id.

// Error types reported to the Runtime API (errorType of the invocation
// error).
const (
	ErrTypeInvalidEvent = "InvalidEvent"     // the payload is unusable as a whole
	ErrTypeUndelivered  = "UndeliveredAlert" // alerts reached neither SNS nor the dead-letter queue
	ErrTypeUndecided    = "UndecidedRecords" // the inventory failed for some records
)

// Share of the remaining invocation time given to each phase: deciding
// (inventory lookups) ends at decideShare of it, publishing at
// publishShare, dead-lettering just before the deadline.
const (
	decideShare    = 0.5
	publishShare   = 0.8
	answerReserve  = time.Second // kept at the end to answer the Runtime API
	workers        = 8           // concurrent SNS publishes and SQS sends
	maxLoggedItems = 10          // malformed items and undecided records logged per invocation
)

// Handler is the Lambda handler. It implements lambda.Handler, so that the
// payload reaches the decoders without a JSON round trip.
type Handler struct {
	proc  *detect.Processor
	pub   detect.Publisher
	dlq   *deadLetterQueue
	dec   cloudtrail.Decoder
	retry detect.RetryPolicy
	log   *slog.Logger
	out   io.Writer // EMF records
	outMu sync.Mutex
	now   func() time.Time // nil: time.Now

	accountOnce sync.Once // warns once when the function's account is unknown

	shadow *shadowrun.Runner // shadow mode, nil: off

	// Organisation mode only (nil otherwise).
	sessions *ec2inventory.MemberSessions
	org      *detect.Organization
}

func (h *Handler) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// flushShadow writes shadow mode's report of this invocation (one log line
// and its metrics, next to the EMF records); a failure is logged, never an
// invocation error: the report is evidence for a decision, not an alert.
func (h *Handler) flushShadow(log *slog.Logger, requestID string) {
	if h.shadow == nil {
		return
	}
	h.outMu.Lock()
	err := h.shadow.Flush(h.out, h.clock(), requestID)
	h.outMu.Unlock()
	if err != nil {
		log.Warn("shadow report not written", lambdarun.KeyError, err.Error())
	}
}

// shape is the kind of event an invocation carries.
type shape int

const (
	shapeUnknown shape = iota
	shapeEventBridge
	shapeCWL
	shapeKinesis
)

// String names the shape as cloudtrail.Source does.
func (s shape) String() string {
	switch s {
	case shapeEventBridge:
		return cloudtrail.SourceEventBridge.String()
	case shapeCWL:
		return cloudtrail.SourceCWL.String()
	case shapeKinesis:
		return cloudtrail.SourceKinesis.String()
	default:
		return "unknown"
	}
}

// sniff finds the shape of payload from its top-level keys: "awslogs"
// (CloudWatch Logs subscription), "detail-type" (EventBridge), or
// "Records" whose elements are Kinesis records.
func sniff(payload []byte) (shape, error) {
	var env struct {
		// RawMessage records the presence of a key whatever its value;
		// the decoders then explain what is wrong with it.
		AWSLogs json.RawMessage `json:"awslogs"`
		Records *[]struct {
			EventSource string    `json:"eventSource"`
			Kinesis     *struct{} `json:"kinesis"`
		} `json:"Records"`
		DetailType json.RawMessage `json:"detail-type"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || te.Field == "" {
			return shapeUnknown, fmt.Errorf("detector: the event is not a JSON object: %w", err)
		}
		// A field of the wrong type: the decoders report it precisely.
	}
	switch {
	case len(env.AWSLogs) > 0:
		return shapeCWL, nil
	case len(env.DetailType) > 0:
		return shapeEventBridge, nil
	case env.Records != nil:
		recs := *env.Records
		if len(recs) == 0 {
			return shapeKinesis, nil
		}
		for _, r := range recs {
			if r.Kinesis != nil || r.EventSource == "aws:kinesis" {
				return shapeKinesis, nil
			}
		}
		return shapeUnknown, errors.New(`detector: "Records" holds no Kinesis record`)
	}
	return shapeUnknown, errors.New(`detector: unknown event shape: no "awslogs", "detail-type" or Kinesis "Records"`)
}

// Summary is the response to a CloudWatch Logs or EventBridge invocation
// (asynchronous invocations discard it; it helps tests and manual
// invocations).
type Summary struct {
	Source       string `json:"source"`
	Events       int    `json:"events"`
	Alerts       int    `json:"alerts"`
	Published    int    `json:"published"`
	DeadLettered int    `json:"dead_lettered"`
	Suppressed   int    `json:"suppressed"`
	Malformed    int    `json:"malformed"`
}

// Invoke handles one invocation.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	start := h.clock()
	requestID := ""
	lc, hasLC := lambdacontext.FromContext(ctx)
	if hasLC {
		requestID = lc.AwsRequestID
	}
	log := h.log.With(lambdarun.KeyRequestID, requestID)
	if h.proc.Account() == "" {
		// Without DEFENDERS_SELF_ROLE_ARN the invoked function's ARN names
		// the account.
		if hasLC {
			if a := detect.AccountFromARN(lc.InvokedFunctionArn); a != "" {
				h.proc.SetAccount(a)
			}
		}
		if h.proc.Account() == "" {
			h.accountOnce.Do(func() {
				log.Warn("the function's account is unknown: records of every account are judged as this account's",
					"hint", contract.EnvSelfRoleARN+" or the invoked function ARN names it")
			})
		}
	}
	var m metrics
	var sts0 ec2inventory.SessionStats
	if h.sessions != nil {
		sts0 = h.sessions.Stats()
	}

	kind, err := sniff(payload)
	var b cloudtrail.Batch
	if err == nil {
		m.Source = kind.String()
		switch kind {
		case shapeCWL:
			err = h.dec.DecodeCWLEvent(payload, &b)
		case shapeEventBridge:
			err = h.dec.DecodeEventBridge(payload, &b)
		case shapeKinesis:
			err = h.dec.DecodeKinesisEvent(payload, &b)
		}
	}
	if err != nil {
		m.Malformed = b.Malformed + 1
		m.EventsSeen = b.Events
		m.DurationMs = msSince(h.clock(), start)
		h.emit(m, detect.Result{}, sts0, requestID)
		log.Error("unusable event", "source", kind.String(), "bytes", len(payload), lambdarun.KeyError, err.Error())
		return nil, invocationError(ErrTypeInvalidEvent, err)
	}
	for i, ie := range b.Errors {
		if i == maxLoggedItems {
			log.Warn("more malformed items", "count", b.Malformed-maxLoggedItems)
			break
		}
		log.Warn("malformed item", "source", ie.Source.String(), "id", ie.ID, "sequence_number", ie.SequenceNumber, lambdarun.KeyError, ie.Error())
	}

	deadline, hasDeadline := ctx.Deadline()
	phase := func(share float64) (context.Context, context.CancelFunc) {
		if !hasDeadline {
			return context.WithCancel(ctx)
		}
		left := deadline.Sub(start) - answerReserve
		return context.WithDeadline(ctx, start.Add(time.Duration(float64(left)*share)))
	}

	decideCtx, cancel := phase(decideShare)
	res := h.proc.ProcessBatch(decideCtx, &b)
	cancel()
	m.add(res.Stats)

	pubCtx, cancel := phase(publishShare)
	failed := h.publish(pubCtx, res.Alerts)
	cancel()
	m.Published = len(res.Alerts) - len(failed)
	m.PublishFailures = len(failed)

	dlqCtx, cancel := phase(1)
	undelivered := h.deadLetter(dlqCtx, failed, requestID)
	cancel()
	// A dead-lettered alert is as good as delivered (it is redriven from
	// the queue): the deduplicator keeps it. Only what reached neither is
	// forgotten, so that the retry raises it again.
	for i := range undelivered {
		h.proc.Forget(undelivered[i].Alert)
	}
	m.DeadLettered = len(failed) - len(undelivered)
	m.Undelivered = len(undelivered)
	h.logAlerts(log, res.Alerts, failed, undelivered)

	h.logSkipped(log, res.Skipped)
	for i, u := range res.Undecided {
		if i == maxLoggedItems {
			log.Warn("more undecided records", "count", len(res.Undecided)-maxLoggedItems)
			break
		}
		log.Warn("undecided record", "instance_id", u.InstanceID, "event_id", u.Record.EventID,
			"account", accountOf(u.Record), "aws_region", u.Record.AWSRegion,
			"sequence_number", u.Record.SequenceNumber, lambdarun.KeyError, u.Err.Error())
	}
	m.DurationMs = msSince(h.clock(), start)
	h.emit(m, res, sts0, requestID)
	h.flushShadow(log, requestID)
	attrs := []any{"source", kind.String(), "stats", res.Stats,
		"published", m.Published, "dead_lettered", m.DeadLettered, "undelivered", m.Undelivered}
	if h.org != nil {
		attrs = append(attrs, "by_account", accountSummary(res))
	}
	log.Info("invocation done", attrs...)

	if kind == shapeKinesis {
		resp, err := kinesisResponse(undelivered, res.Undecided)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	if len(undelivered) > 0 {
		return nil, invocationError(ErrTypeUndelivered, fmt.Errorf(
			"detector: %d alerts reached neither SNS nor the dead-letter queue (first: %w); failing the invocation so that Lambda retries it",
			len(undelivered), undelivered[0].Err))
	}
	if len(res.Undecided) > 0 {
		return nil, invocationError(ErrTypeUndecided, fmt.Errorf(
			"detector: %d records could not be checked against the inventory (first: %w); failing the invocation so that Lambda retries it",
			len(res.Undecided), res.Undecided[0].Err))
	}
	return json.Marshal(Summary{
		Source: kind.String(), Events: res.Stats.Events, Alerts: res.Stats.Alerts, Published: m.Published,
		DeadLettered: m.DeadLettered, Suppressed: res.Stats.Suppressed, Malformed: res.Stats.Malformed,
	})
}

// invocationError gives err a stable errorType in the Runtime API error.
func invocationError(typ string, err error) error {
	return messages.InvokeResponse_Error{Type: typ, Message: err.Error()}
}

// kinesisResponse reports the Kinesis records that must be retried: those
// carrying an undelivered alert or an undecided record. Lambda retries from
// the lowest reported sequence number. A record without a sequence number
// cannot be reported, so the whole batch fails instead.
func kinesisResponse(undelivered []detect.FailedAlert, undecided []detect.Undecided) (events.KinesisEventResponse, error) {
	var seqs []string
	for _, f := range undelivered {
		seqs = append(seqs, f.Alert.SequenceNumber)
	}
	for _, u := range undecided {
		seqs = append(seqs, u.Record.SequenceNumber)
	}
	resp := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	if slices.Contains(seqs, "") {
		return resp, invocationError(ErrTypeUndelivered, errors.New(
			"detector: a Kinesis record to retry has no sequence number; failing the whole batch"))
	}
	slices.SortFunc(seqs, compareSequence)
	for _, s := range slices.Compact(seqs) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: s})
	}
	return resp, nil
}

// compareSequence orders Kinesis sequence numbers (decimal strings of up
// to 128 bits) numerically.
func compareSequence(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
}

// publish publishes alerts with workers concurrent detect publishers and
// returns those that failed.
func (h *Handler) publish(ctx context.Context, alerts []detect.Alert) []detect.FailedAlert {
	var mu sync.Mutex
	var failed []detect.FailedAlert
	parallel(len(alerts), func(i int) {
		f := h.proc.Publish(ctx, h.pub, alerts[i:i+1], h.retry)
		if len(f) > 0 {
			mu.Lock()
			failed = append(failed, f...)
			mu.Unlock()
		}
	})
	return failed
}

// deadLetter sends failed alerts to the dead-letter queue and returns
// those it could not send, with the queue's error joined to the publish
// error.
func (h *Handler) deadLetter(ctx context.Context, failed []detect.FailedAlert, requestID string) []detect.FailedAlert {
	var mu sync.Mutex
	var undelivered []detect.FailedAlert
	now := h.clock()
	parallel(len(failed), func(i int) {
		f := failed[i]
		if err := h.dlq.send(ctx, f, requestID, now); err != nil {
			f.Err = errors.Join(f.Err, err)
			mu.Lock()
			undelivered = append(undelivered, f)
			mu.Unlock()
		}
	})
	return undelivered
}

// parallel runs f(0..n-1) on up to workers goroutines.
func parallel(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// maxSummarisedAccounts bounds the accounts named in the skipped-records
// summary.
const maxSummarisedAccounts = 20

// logSkipped logs the instance sessions skipped without a decision: the
// first maxLoggedItems one by one (account, event id, instance, why), and
// a summary of all of them by reason and account. Other accounts' records
// are routine with an organisation trail (info); unattributable records
// are not (warn).
func (h *Handler) logSkipped(log *slog.Logger, skipped []detect.Skipped) {
	if len(skipped) == 0 {
		return
	}
	byReason := map[string]int{}
	byAccount := map[string]int{}
	for i := range skipped {
		sk := &skipped[i]
		byReason[string(sk.Reason)]++
		if _, ok := byAccount[sk.Account]; ok || len(byAccount) < maxSummarisedAccounts {
			byAccount[sk.Account]++
		}
		if i >= maxLoggedItems {
			continue
		}
		level := slog.LevelInfo
		if sk.Reason == detect.SkipUnattributable {
			level = slog.LevelWarn
		}
		attrs := []any{"reason", string(sk.Reason), "account", sk.Account, "event_id", sk.Record.EventID,
			"instance_id", sk.InstanceID, "aws_region", sk.Record.AWSRegion, "recipient_account", sk.Record.RecipientAccountID}
		if sk.Err != nil {
			attrs = append(attrs, lambdarun.KeyError, sk.Err.Error())
		}
		log.Log(context.Background(), level, "skipped record", attrs...)
	}
	log.Info("skipped records", "count", len(skipped), "by_reason", byReason, "by_account", byAccount)
}

// logAlerts logs every alert with what became of it.
func (h *Handler) logAlerts(log *slog.Logger, alerts []detect.Alert, failed, undelivered []detect.FailedAlert) {
	key := func(a *detect.Alert) string { return a.UniqID + "|" + a.EventID }
	outcome := make(map[string]string, len(failed))
	for i := range failed {
		outcome[key(&failed[i].Alert)] = "dead_lettered"
	}
	for i := range undelivered {
		outcome[key(&undelivered[i].Alert)] = "undelivered"
	}
	for i := range alerts {
		a := &alerts[i]
		o := cmp.Or(outcome[key(a)], "published")
		level := slog.LevelWarn
		if o == "undelivered" {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "alert", "outcome", o, "type", a.Type, "severity", string(a.Severity),
			"uniq_id", a.UniqID, "instance_id", a.InstanceID, "source_ip", a.SourceIP,
			"account", a.Account, "aws_region", a.Region, "instance_region", a.InstanceRegion,
			"event_id", a.EventID, "event_name", a.EventName, "reason", a.Reason)
	}
}

func msSince(now, start time.Time) float64 {
	return float64(now.Sub(start).Microseconds()) / 1000
}
