package locker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// EventKind says what an event asks the locker to do.
type EventKind string

// Event kinds.
const (
	// KindStateChange is an "EC2 Instance State-change Notification": lock
	// the roles of that instance.
	KindStateChange EventKind = "state-change"
	// KindScheduled is a "Scheduled Event" from an EventBridge schedule:
	// reconcile every managed role.
	KindScheduled EventKind = "scheduled"
	// KindAPICall is an "AWS API Call via CloudTrail" event for one of
	// AddressAPICalls: an address or instance profile changed without a
	// state change. It reconciles every managed role.
	KindAPICall EventKind = "api-call"
)

// EventBridge detail types and sources the locker accepts.
const (
	// DetailTypeStateChange is the detail-type of EC2 state-change events.
	DetailTypeStateChange = "EC2 Instance State-change Notification"
	// DetailTypeScheduled is the detail-type of scheduled events.
	DetailTypeScheduled = "Scheduled Event"
	// DetailTypeAPICall is the detail-type of CloudTrail management events.
	DetailTypeAPICall = "AWS API Call via CloudTrail"
	// SourceEC2 is the source of EC2 state-change and CloudTrail EC2 events.
	SourceEC2 = "aws.ec2"
	// SourceEvents is the source of scheduled events.
	SourceEvents = "aws.events"
)

// AddressAPICalls are the EC2 API calls that change an instance's public
// addresses or instance profile without a state change. An EventBridge rule
// on these CloudTrail events (detail-type DetailTypeAPICall, source
// SourceEC2, detail.eventName one of these) closes the gap between two
// scheduled reconciles; without it such changes wait for the schedule.
var AddressAPICalls = []string{
	"AssociateAddress", "DisassociateAddress",
	"AssignIpv6Addresses", "UnassignIpv6Addresses",
	"AttachNetworkInterface", "DetachNetworkInterface",
	"AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation", "DisassociateIamInstanceProfile",
	"ModifyNetworkInterfaceAttribute",
}

// Sentinel errors of ParseEvent; test with errors.Is.
var (
	// ErrMalformedEvent means the input is not an EventBridge event.
	ErrMalformedEvent = errors.New("malformed event")
	// ErrUnsupportedEvent means a well-formed event the locker does not
	// handle (another detail-type, source or API call).
	ErrUnsupportedEvent = errors.New("unsupported event")
)

// Event is a parsed EventBridge event.
type Event struct {
	// Kind is what the event asks for.
	Kind EventKind `json:"kind"`
	// ID is the EventBridge event id.
	ID string `json:"id,omitempty"`
	// Account is the account the event happened in.
	Account string `json:"account,omitempty"`
	// Region is the region the event happened in.
	Region string `json:"region,omitempty"`
	// Time is when the event happened (zero if absent).
	Time time.Time `json:"time"`
	// InstanceID is the instance of a state-change event.
	InstanceID string `json:"instanceId,omitempty"`
	// State is the new state of a state-change event.
	State string `json:"state,omitempty"`
	// APICall is the eventName of a CloudTrail event.
	APICall string `json:"apiCall,omitempty"`
}

// instanceStates are the states an EC2 state-change event can report.
var instanceStates = []string{"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}

var instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// ParseEvent parses an EventBridge event: an EC2 instance state-change
// notification, a scheduled event, or a CloudTrail API call event for one
// of AddressAPICalls. Anything else is an error wrapping ErrMalformedEvent
// (not JSON, not an event, missing or invalid fields) or
// ErrUnsupportedEvent (another kind of event).
func ParseEvent(raw []byte) (Event, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return Event{}, fmt.Errorf("locker: parse event: %w: empty input", ErrMalformedEvent)
	}
	var env struct {
		ID         string          `json:"id"`
		DetailType *string         `json:"detail-type"`
		Source     *string         `json:"source"`
		Account    string          `json:"account"`
		Region     string          `json:"region"`
		Time       string          `json:"time"`
		Detail     json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("locker: parse event: %w: %w", ErrMalformedEvent, err)
	}
	if env.DetailType == nil || env.Source == nil {
		return Event{}, fmt.Errorf("locker: parse event: %w: no detail-type or source (not an EventBridge event)", ErrMalformedEvent)
	}
	ev := Event{ID: env.ID, Account: env.Account, Region: env.Region}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339, env.Time)
		if err != nil {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: time %q: %w", env.ID, ErrMalformedEvent, env.Time, err)
		}
		ev.Time = t
	}
	switch dt, src := *env.DetailType, *env.Source; {
	case dt == DetailTypeStateChange && src == SourceEC2:
		var d struct {
			InstanceID string `json:"instance-id"`
			State      string `json:"state"`
		}
		if err := json.Unmarshal(env.Detail, &d); err != nil || len(env.Detail) == 0 {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: state-change detail is not an object", env.ID, ErrMalformedEvent)
		}
		if !instanceIDPattern.MatchString(d.InstanceID) {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: instance-id %q is not an instance id", env.ID, ErrMalformedEvent, d.InstanceID)
		}
		if !slices.Contains(instanceStates, d.State) {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: state %q is not one of %s", env.ID, ErrMalformedEvent, d.State, strings.Join(instanceStates, ", "))
		}
		ev.Kind, ev.InstanceID, ev.State = KindStateChange, d.InstanceID, d.State
	case dt == DetailTypeScheduled && src == SourceEvents:
		ev.Kind = KindScheduled
	case dt == DetailTypeAPICall && src == SourceEC2:
		var d struct {
			EventName string `json:"eventName"`
		}
		if err := json.Unmarshal(env.Detail, &d); err != nil || d.EventName == "" {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: CloudTrail detail has no eventName", env.ID, ErrMalformedEvent)
		}
		if !slices.Contains(AddressAPICalls, d.EventName) {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: API call %s does not change addresses", env.ID, ErrUnsupportedEvent, d.EventName)
		}
		ev.Kind, ev.APICall = KindAPICall, d.EventName
	default:
		return Event{}, fmt.Errorf("locker: parse event %s: %w: detail-type %q from source %q", env.ID, ErrUnsupportedEvent, dt, src)
	}
	return ev, nil
}
