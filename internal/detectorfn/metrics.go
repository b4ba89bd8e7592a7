package detectorfn

import (
	"time"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detect"
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

// emit writes the invocation's EMF record to stdout.
func (h *Handler) emit(m metrics, requestID string) {
	line := emfLine(m, requestID, h.clock())
	if line == nil || h.out == nil {
		return
	}
	h.outMu.Lock()
	defer h.outMu.Unlock()
	if _, err := h.out.Write(line); err != nil {
		h.log.Error("write metrics", lambdarun.KeyError, err.Error())
	}
}
