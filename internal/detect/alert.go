package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// SNSMaxMessageBytes is the largest message SNS accepts (256 KiB, message
// attributes included).
const SNSMaxMessageBytes = 256 * 1024

// Alert is the message published for a BadSource or InstanceMissing
// verdict. Its JSON is a superset of the anchor project's SNS message
// (type, message, expected_ips, instance_id, uniq_id, CloudTrailEvent), so
// existing subscribers keep working.
type Alert struct {
	// Type is "BadSource" or "InstanceMissing", or in organisation mode
	// "AccountNotCovered" (a member account whose inventory the detector
	// cannot read; see "Organisation mode").
	Type string `json:"type"`
	// Message is a one-line human-readable summary.
	Message string `json:"message"`
	// ExpectedIPs are the instance's public addresses and its VPC's NAT
	// gateway addresses (empty, not null, for InstanceMissing).
	ExpectedIPs []string `json:"expected_ips"`
	// InstanceID is the instance whose credentials were used.
	InstanceID string `json:"instance_id"`
	// UniqID is "<instance id>-<sourceIPAddress>", the anchor's format. It
	// is the deduplication key: one alert per instance and source address
	// per dedupe window, whatever the API calls. (The principalId stands
	// in for the instance id when that cannot be determined.) An
	// AccountNotCovered alert has "<account>-AccountNotCovered"
	// (NotCoveredKey): one per account and window. In organisation mode the
	// detector deduplicates on Account and UniqID together, and so should
	// subscribers.
	UniqID string `json:"uniq_id"`
	// CloudTrailEvent is the CloudTrail record, embedded as a JSON object.
	CloudTrailEvent json.RawMessage `json:"CloudTrailEvent"`

	Account        string   `json:"account"`                   // account of the credentials (a member account's in organisation mode)
	Region         string   `json:"region"`                    // awsRegion of the call
	InstanceRegion string   `json:"instance_region,omitempty"` // region the instance was found in (may differ from region)
	RoleARN        string   `json:"role_arn"`                  // the instance profile's IAM role
	AccessKeyID    string   `json:"access_key_id"`             // the temporary access key used
	Severity       Severity `json:"severity"`                  // HIGH or MEDIUM, see Policy.Decide
	EventTime      string   `json:"event_time"`                // eventTime of the call
	EventName      string   `json:"event_name"`                // eventName of the call

	EventSource     string   `json:"event_source"`                     // eventSource of the call
	EventID         string   `json:"event_id"`                         // eventID of the call
	SourceIP        string   `json:"source_ip"`                        // sourceIPAddress of the call
	UserAgent       string   `json:"user_agent,omitempty"`             // userAgent of the call
	ErrorCode       string   `json:"error_code,omitempty"`             // errorCode, when the call failed
	VPCEndpointID   string   `json:"vpc_endpoint_id,omitempty"`        // vpcEndpointId, when set
	ExpectedVPCEs   []string `json:"expected_vpc_endpoints,omitempty"` // the instance VPC's endpoints, when the call used one
	EC2RoleDelivery string   `json:"ec2_role_delivery,omitempty"`      // "1.0" (IMDSv1) or "2.0" (IMDSv2)
	Reason          string   `json:"reason"`                           // why the verdict was reached

	// SequenceNumber and DeliveryID identify the delivery item the record
	// came in (see cloudtrail.Record); they are not published.
	SequenceNumber string `json:"-"`
	DeliveryID     string `json:"-"`
}

// NewAlert builds the alert for a non-OK verdict about rec, made with the
// credentials of instanceID (inst, if the inventory found it).
func NewAlert(rec *cloudtrail.Record, instanceID string, inst Instance, v Verdict) Alert {
	ui := &rec.UserIdentity
	expected := make([]string, 0, len(inst.PublicIPs)+len(inst.NATIPs))
	for _, a := range inst.PublicIPs {
		expected = append(expected, a.String())
	}
	for _, a := range inst.NATIPs {
		expected = append(expected, a.String())
	}
	role := ui.SessionContext.SessionIssuer.ARN
	if role == "" {
		role = ui.ARN
	}
	a := Alert{
		Type:            v.Kind.String(),
		ExpectedIPs:     expected,
		InstanceID:      instanceID,
		UniqID:          UniqID(rec, instanceID),
		CloudTrailEvent: embedRecord(rec.JSON()),
		Account:         accountOf(rec),
		Region:          rec.AWSRegion,
		InstanceRegion:  inst.Region,
		RoleARN:         role,
		AccessKeyID:     ui.AccessKeyID,
		Severity:        v.Severity,
		EventTime:       rec.EventTime,
		EventName:       rec.EventName,
		EventSource:     rec.EventSource,
		EventID:         rec.EventID,
		SourceIP:        rec.SourceIPAddress,
		UserAgent:       rec.UserAgent,
		ErrorCode:       rec.ErrorCode,
		VPCEndpointID:   rec.VPCEndpointID,
		EC2RoleDelivery: ui.SessionContext.EC2RoleDelivery,
		Reason:          v.Reason,
		SequenceNumber:  rec.SequenceNumber,
		DeliveryID:      rec.DeliveryID,
	}
	if rec.VPCEndpointID != "" {
		a.ExpectedVPCEs = slices.Clone(inst.VPCEndpointIDs)
	}
	switch v.Kind {
	case AccountNotCovered:
		a.UniqID = NotCoveredKey(a.Account)
		a.Message = fmt.Sprintf("Account %s is not covered: the detector cannot read its inventory, so instance %s's call from IP %s was not judged",
			displayID(a.Account), displayID(instanceID), rec.SourceIPAddress)
	case InstanceMissing:
		a.Message = fmt.Sprintf("Instance %s is not in the EC2 inventory (event from IP %s)", displayID(instanceID), rec.SourceIPAddress)
	default:
		a.Message = fmt.Sprintf("Event from IP %s for instance %s is not from expected addresses", rec.SourceIPAddress, displayID(instanceID))
	}
	return a
}

// UniqID returns the alert key for a record made with instanceID's
// credentials: "<instance id>-<sourceIPAddress>", with the principalId
// standing in for an undetermined instance id.
func UniqID(rec *cloudtrail.Record, instanceID string) string {
	if instanceID == "" {
		instanceID = rec.UserIdentity.PrincipalID
	}
	return instanceID + "-" + rec.SourceIPAddress
}

// NotCoveredKey is the UniqID (and deduplication key) of the
// AccountNotCovered alerts of account: one alert per account and dedupe
// window, whatever its instances and source addresses, since none of its
// records can be judged until its member role can be assumed.
func NotCoveredKey(account string) string {
	return account + "-AccountNotCovered"
}

// alertKey is the deduplication key of the alert of verdict kind k about
// rec (Alert.UniqID).
func alertKey(rec *cloudtrail.Record, instanceID string, k VerdictKind) string {
	if k == AccountNotCovered {
		return NotCoveredKey(accountOf(rec))
	}
	return UniqID(rec, instanceID)
}

func displayID(id string) string {
	if id == "" {
		return "(unknown id)"
	}
	return id
}

// embedRecord returns raw as a JSON value for CloudTrailEvent: a private
// copy of the object when raw is valid JSON and UTF-8, otherwise (never
// for real CloudTrail input) a JSON string holding it.
func embedRecord(raw []byte) json.RawMessage {
	if len(raw) > 0 && utf8.Valid(raw) && json.Valid(raw) {
		return bytes.Clone(raw)
	}
	b, err := json.Marshal(strings.ToValidUTF8(string(raw), "\uFFFD"))
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// Subject is the SNS subject for the alert, as the anchor project sets it
// (SNS subjects are limited to 100 characters).
func (a *Alert) Subject() string {
	s := "Potential Credential Compromise for " + displayID(a.InstanceID)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// Marshal renders the alert as JSON of at most maxBytes bytes (no limit if
// maxBytes <= 0). When the full alert is too large, CloudTrailEvent is
// replaced by a summary object with "truncated": true, the original size
// and the record's identifying fields, so that an oversized record never
// prevents the alert from being sent. It fails only if even that does not
// fit.
func (a *Alert) Marshal(maxBytes int) ([]byte, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("detect: marshal alert %s: %w", a.UniqID, err)
	}
	if maxBytes <= 0 || len(b) <= maxBytes {
		return b, nil
	}
	short := *a
	summary, err := json.Marshal(map[string]any{
		"truncated":       true,
		"original_bytes":  len(a.CloudTrailEvent),
		"eventID":         a.EventID,
		"eventTime":       a.EventTime,
		"eventSource":     a.EventSource,
		"eventName":       a.EventName,
		"awsRegion":       a.Region,
		"sourceIPAddress": a.SourceIP,
		"accessKeyId":     a.AccessKeyID,
	})
	if err != nil {
		return nil, fmt.Errorf("detect: marshal alert %s: %w", a.UniqID, err)
	}
	short.CloudTrailEvent = summary
	if b, err = json.Marshal(&short); err != nil {
		return nil, fmt.Errorf("detect: marshal alert %s: %w", a.UniqID, err)
	}
	if len(b) > maxBytes {
		return nil, fmt.Errorf("detect: alert %s is %d bytes even without its CloudTrail record, over the %d-byte limit", a.UniqID, len(b), maxBytes)
	}
	return b, nil
}
