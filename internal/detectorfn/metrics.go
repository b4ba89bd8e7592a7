package detectorfn

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/emf"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
)

// MetricsNamespace is the CloudWatch namespace of the detector's metrics
// (constructs/detector.MetricsNamespace).
const MetricsNamespace = contract.DetectorMetricsNamespace

// metrics are one invocation's figures, written as one CloudWatch embedded
// metric format (EMF) record: CloudWatch Logs turns it into metrics, so
// the function needs no cloudwatch:PutMetricData.
type metrics struct {
	Source                string  `json:"Source"`                // event shape (a property, not a dimension)
	EventsSeen            int     `json:"EventsSeen"`            // CloudTrail records seen
	InstanceSessions      int     `json:"InstanceSessions"`      // records made with instance credentials
	Alerts                int     `json:"Alerts"`                // alerts raised (after deduplication)
	Suppressed            int     `json:"Suppressed"`            // alerts suppressed as duplicates
	Malformed             int     `json:"Malformed"`             // items (or whole payloads) that did not decode
	Undecided             int     `json:"Undecided"`             // records left for a retry because the inventory failed
	RegionLookupFailed    int     `json:"RegionLookupFailed"`    // of those, instances not in the function's region that the other regions did not answer for
	SkippedOtherAccount   int     `json:"SkippedOtherAccount"`   // instance sessions of other accounts (organisation trail), not judged
	SkippedUnattributable int     `json:"SkippedUnattributable"` // instance sessions with garbled account fields, not judged
	SkippedOtherRegion    int     `json:"SkippedOtherRegion"`    // instances outside the DEFENDERS_REGIONS regions, not judged
	CrossRegion           int     `json:"CrossRegion"`           // records judged against an instance of another region
	Published             int     `json:"Published"`             // alerts published to SNS
	PublishFailures       int     `json:"PublishFailures"`       // alerts SNS did not take after the retries
	DeadLettered          int     `json:"DeadLettered"`          // of those, alerts sent to the dead-letter queue
	Undelivered           int     `json:"Undelivered"`           // alerts that reached neither (the invocation or record is retried)
	DurationMs            float64 `json:"DurationMs"`            // handler time
}

// add takes the processor's figures.
func (m *metrics) add(s detect.Stats) {
	m.EventsSeen = s.Events
	m.InstanceSessions = s.InstanceSessions
	m.Alerts = s.Alerts
	m.Suppressed = s.Suppressed
	m.Malformed = s.Malformed
	m.Undecided = s.Undecided
	m.RegionLookupFailed = s.RegionLookupFailed
	m.SkippedOtherAccount = s.SkippedOtherAccount
	m.SkippedUnattributable = s.SkippedUnattributable
	m.SkippedOtherRegion = s.SkippedOtherRegion
	m.CrossRegion = s.OtherRegion
}

// emfMetrics lists the metrics of every record.
var emfMetrics = append(emf.Counts("EventsSeen", "InstanceSessions", "Alerts", "Suppressed", "Malformed", "Undecided",
	"RegionLookupFailed", "SkippedOtherAccount", "SkippedUnattributable", "SkippedOtherRegion", "CrossRegion",
	"Published", "PublishFailures", "DeadLettered", "Undelivered"), emf.Metric{Name: "DurationMs", Unit: emf.Milliseconds})

// emfLine renders m as one EMF line (internal/emf), without dimensions
// (one time series per metric for the whole function, which is what the
// alarms use).
func emfLine(m metrics, requestID string, now time.Time) []byte {
	line, err := emf.Line(MetricsNamespace, now, requestID, emfMetrics, m)
	if err != nil { // cannot happen: plain numbers and strings
		return nil
	}
	return line
}

// emit writes the invocation's EMF record to stdout, and in organisation
// mode the organisation's figures and the per-account records (see
// "Metrics of the organisation mode").
func (h *Handler) emit(m metrics, res detect.Result, sts0 ec2inventory.SessionStats, requestID string) {
	now := h.clock()
	var lines [][]byte
	if h.org == nil {
		lines = append(lines, emfLine(m, requestID, now))
	} else {
		om := orgMetrics{metrics: m,
			MemberRecords: res.Stats.MemberRecords, NotCovered: res.Stats.NotCovered,
			AccountAccessFailed: res.Stats.AccountAccessFailed, RecipientMismatch: res.Stats.RecipientMismatch,
			Accounts: res.Stats.Accounts}
		sts1 := h.sessions.Stats()
		om.AssumeRoleCalls = sts1.AssumeRoleCalls - sts0.AssumeRoleCalls
		os := h.org.Stats()
		om.AccountsKept, om.CachedEntries = os.Accounts, os.Entries
		if len(res.Accounts) == 1 {
			om.Account = res.Accounts[0]
		}
		byAccount := alertsByAccount(res.Alerts)
		lines = append(lines, orgEMFLine(om, requestID, now))
		for _, a := range slices.Sorted(maps.Keys(byAccount)) {
			if len(lines) > maxAccountMetrics {
				break // the rest are in the log line's by_account
			}
			lines = append(lines, accountEMFLine(a, byAccount[a], requestID, now))
		}
	}
	if h.out == nil {
		return
	}
	h.outMu.Lock()
	defer h.outMu.Unlock()
	for _, line := range lines {
		if line == nil {
			continue
		}
		if _, err := h.out.Write(line); err != nil {
			h.log.Error("write metrics", lambdarun.KeyError, err.Error())
			return
		}
	}
}

// Metrics of the organisation mode
//
// CloudWatch bills a custom metric per distinct set of dimensions: a
// dimension "Account" on every metric would make one metric per account
// and metric name, USD 0.30 a month each, USD 300 a month per metric name
// at 1,000 accounts, for figures nobody alarms on per account. So:
//
//   - every figure stays one metric for the whole function (no dimension),
//     with the organisation's counts added (MemberRecords, NotCovered,
//     AccountAccessFailed, RecipientMismatch, Accounts, AssumeRoleCalls,
//     AccountsKept, CachedEntries): 8 more metrics, USD 2.40 a month, only
//     in organisation mode;
//   - the account of an invocation is a property of its EMF record
//     ("Account", when the batch has one account, as an EventBridge event
//     always does), not a dimension: CloudWatch Logs Insights counts per
//     account for free (stats sum(Alerts) by Account);
//   - only the alerts get an "Account" dimension, in a record of their own
//     per alerting account (Alerts and NotCovered, at most
//     maxAccountMetrics accounts per invocation). CloudWatch meters a
//     metric only in the hours it receives data, so this costs USD 0.30 a
//     month per account that alerts all month long, which an account under
//     attack or without its member stack is worth, and nothing for the
//     quiet ones.

// maxAccountMetrics bounds the per-account EMF records of one invocation.
const maxAccountMetrics = 20

// orgMetrics is the invocation's EMF record in organisation mode: the
// metrics and the organisation's figures.
type orgMetrics struct {
	metrics
	MemberRecords       int    `json:"MemberRecords"`       // instance sessions of member accounts
	NotCovered          int    `json:"NotCovered"`          // of those, in accounts whose member role cannot be assumed (AccountNotCovered alerts)
	AccountAccessFailed int    `json:"AccountAccessFailed"` // of those, undecided: the member credentials could not be obtained
	RecipientMismatch   int    `json:"RecipientMismatch"`   // instance sessions whose recipientAccountId is not the credentials' account
	Accounts            int    `json:"Accounts"`            // distinct accounts judged in the batch
	AssumeRoleCalls     int    `json:"AssumeRoleCalls"`     // sts:AssumeRole calls the invocation made
	AccountsKept        int    `json:"AccountsKept"`        // account inventories kept by the container
	CachedEntries       int    `json:"CachedEntries"`       // their cached entries at the end of the batch
	Account             string `json:"Account,omitempty"`   // the batch's one account: a property, not a dimension
}

// orgEMFMetrics lists the metrics of the organisation mode's record.
var orgEMFMetrics = append(slices.Clone(emfMetrics), emf.Counts("MemberRecords", "NotCovered", "AccountAccessFailed",
	"RecipientMismatch", "Accounts", "AssumeRoleCalls", "AccountsKept", "CachedEntries")...)

// orgEMFLine renders m as one EMF line.
func orgEMFLine(m orgMetrics, requestID string, now time.Time) []byte {
	line, err := emf.Line(MetricsNamespace, now, requestID, orgEMFMetrics, m)
	if err != nil { // cannot happen: plain numbers and strings
		return nil
	}
	return line
}

// accountAlerts are the alerts of one account in an invocation.
type accountAlerts struct {
	Alerts     int `json:"Alerts"`     // alerts raised (after deduplication), every type
	NotCovered int `json:"NotCovered"` // of those, AccountNotCovered
}

// alertsByAccount counts the alerts per account.
func alertsByAccount(alerts []detect.Alert) map[string]accountAlerts {
	out := map[string]accountAlerts{}
	for i := range alerts {
		a := out[alerts[i].Account]
		a.Alerts++
		if alerts[i].Type == detect.AccountNotCovered.String() {
			a.NotCovered++
		}
		out[alerts[i].Account] = a
	}
	return out
}

// accountEMFLine renders an alerting account's record: Alerts and
// NotCovered with the dimension Account (emf.Line writes no dimensions).
func accountEMFLine(account string, a accountAlerts, requestID string, now time.Time) []byte {
	type directive struct {
		Namespace  string       `json:"Namespace"`
		Dimensions [][]string   `json:"Dimensions"`
		Metrics    []emf.Metric `json:"Metrics"`
	}
	type metadata struct {
		Timestamp         int64       `json:"Timestamp"`
		CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
	}
	line, err := json.Marshal(struct {
		AWS       metadata `json:"_aws"`
		RequestID string   `json:"requestId,omitempty"`
		Account   string   `json:"Account"`
		accountAlerts
	}{
		AWS: metadata{Timestamp: now.UnixMilli(), CloudWatchMetrics: []directive{{
			Namespace: MetricsNamespace, Dimensions: [][]string{{"Account"}}, Metrics: emf.Counts("Alerts", "NotCovered"),
		}}},
		RequestID:     requestID,
		Account:       account,
		accountAlerts: a,
	})
	if err != nil { // cannot happen: plain numbers and strings
		return nil
	}
	return append(line, '\n')
}

// accountOf returns the credentials' account of rec as it names it.
func accountOf(rec *cloudtrail.Record) string {
	a, _ := detect.CredentialAccount(rec)
	return a
}

// accountFigures is one account's line in the invocation's log summary.
type accountFigures struct {
	Alerts     int `json:"alerts"`
	NotCovered int `json:"not_covered"`
	Undecided  int `json:"undecided"`
}

// accountSummary summarises the alerts and undecided records per account
// for the log (at most maxSummarisedAccounts accounts).
func accountSummary(res detect.Result) map[string]accountFigures {
	out := map[string]accountFigures{}
	add := func(account string, f func(*accountFigures)) {
		if _, ok := out[account]; !ok && len(out) >= maxSummarisedAccounts {
			return
		}
		v := out[account]
		f(&v)
		out[account] = v
	}
	for i := range res.Alerts {
		a := &res.Alerts[i]
		add(a.Account, func(v *accountFigures) {
			v.Alerts++
			if a.Type == detect.AccountNotCovered.String() {
				v.NotCovered++
			}
		})
	}
	for i := range res.Undecided {
		add(accountOf(res.Undecided[i].Record), func(v *accountFigures) { v.Undecided++ })
	}
	return out
}
