package locker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/defenders-cdk/defenders/internal/locker/trigger"
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
	// state change. It reconciles the roles of the instance the event names
	// (Event.Refs), or every managed role when it names none.
	KindAPICall EventKind = "api-call"
)

// EventBridge detail types and sources the locker accepts (see package
// trigger, which constructs/locker reads too).
const (
	// DetailTypeStateChange is the detail-type of EC2 state-change events.
	DetailTypeStateChange = trigger.DetailTypeStateChange
	// DetailTypeScheduled is the detail-type of scheduled events.
	DetailTypeScheduled = trigger.DetailTypeScheduled
	// DetailTypeAPICall is the detail-type of CloudTrail management events.
	DetailTypeAPICall = trigger.DetailTypeAPICall
	// SourceEC2 is the source of EC2 state-change and CloudTrail EC2 events.
	SourceEC2 = trigger.SourceEC2
	// SourceEvents is the source of scheduled events.
	SourceEvents = trigger.SourceEvents
)

// AddressAPICalls are the EC2 API calls that change an instance's public
// addresses or instance profile without a state change (trigger.AddressAPICalls).
// constructs/locker routes their CloudTrail events (detail-type
// DetailTypeAPICall, source SourceEC2, detail.eventName one of these) to the
// locker, which then reconciles the roles of the instance the event names
// (see APIRefs); without the rule such changes wait for the schedule.
var AddressAPICalls = trigger.AddressAPICalls

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
	// ErrorCode is the errorCode of a CloudTrail event whose call failed
	// (it changed nothing).
	ErrorCode string `json:"errorCode,omitempty"`
	// Refs are what a CloudTrail event names (its requestParameters and
	// responseElements).
	Refs APIRefs `json:"refs,omitzero"`
}

// APIRefs are the ids a CloudTrail event of an AddressAPICalls call names,
// collected from its requestParameters and responseElements whatever their
// nesting (AssociateAddress has requestParameters.instanceId;
// AssociateIamInstanceProfile has
// requestParameters.AssociateIamInstanceProfileRequest.InstanceId), keys
// compared without case. Each list is sorted and has no duplicates; values
// that do not look like what their key names are dropped.
type APIRefs struct {
	// InstanceIDs are instance ids (i-...).
	InstanceIDs []string `json:"instanceIds,omitempty"`
	// NetworkInterfaceIDs are network interface ids (eni-...).
	NetworkInterfaceIDs []string `json:"networkInterfaceIds,omitempty"`
	// AttachmentIDs are network interface attachment ids (eni-attach-...).
	AttachmentIDs []string `json:"attachmentIds,omitempty"`
	// AllocationIDs are Elastic IP allocation ids (eipalloc-...).
	AllocationIDs []string `json:"allocationIds,omitempty"`
	// AssociationIDs are Elastic IP association ids (eipassoc-...); the
	// iip-assoc- ids of instance profile associations are not collected.
	AssociationIDs []string `json:"associationIds,omitempty"`
	// PublicIPs are public IP addresses.
	PublicIPs []string `json:"publicIps,omitempty"`
	// InstanceProfileARNs are instance profile ARNs (the profile a
	// DisassociateIamInstanceProfile removed, for one).
	InstanceProfileARNs []string `json:"instanceProfileArns,omitempty"`
}

// Shapes of the ids APIRefs collects.
var (
	eniIDPattern         = regexp.MustCompile(`^eni-[0-9a-f]{8,17}$`)
	attachmentIDPattern  = regexp.MustCompile(`^eni-attach-[0-9a-f]{8,17}$`)
	allocationIDPattern  = regexp.MustCompile(`^eipalloc-[0-9a-f]{8,17}$`)
	associationIDPattern = regexp.MustCompile(`^eipassoc-[0-9a-f]{8,17}$`)
	profileARNPattern    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:instance-profile/[\w+=,.@/-]+$`)
)

// maxRefDepth bounds the nesting collectRefs descends into.
const maxRefDepth = 16

// collect adds the ids found in v (decoded JSON) to a.
func (a *APIRefs) collect(v any, depth int) {
	if depth > maxRefDepth {
		return
	}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			a.collect(x, depth+1)
		}
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok {
				a.add(strings.ToLower(k), s)
				continue
			}
			a.collect(x, depth+1)
		}
	}
}

// add files one string value under its (lower-case) key.
func (a *APIRefs) add(key, s string) {
	switch {
	case key == "instanceid" && instanceIDPattern.MatchString(s):
		a.InstanceIDs = append(a.InstanceIDs, s)
	case key == "networkinterfaceid" && eniIDPattern.MatchString(s):
		a.NetworkInterfaceIDs = append(a.NetworkInterfaceIDs, s)
	case key == "attachmentid" && attachmentIDPattern.MatchString(s):
		a.AttachmentIDs = append(a.AttachmentIDs, s)
	case key == "allocationid" && allocationIDPattern.MatchString(s):
		a.AllocationIDs = append(a.AllocationIDs, s)
	case key == "associationid" && associationIDPattern.MatchString(s):
		a.AssociationIDs = append(a.AssociationIDs, s)
	case key == "publicip":
		if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
			a.PublicIPs = append(a.PublicIPs, ip.String())
		}
	case key == "arn" && profileARNPattern.MatchString(s):
		a.InstanceProfileARNs = append(a.InstanceProfileARNs, s)
	}
}

// normalize sorts and deduplicates every list.
func (a *APIRefs) normalize() {
	for _, l := range []*[]string{&a.InstanceIDs, &a.NetworkInterfaceIDs, &a.AttachmentIDs, &a.AllocationIDs,
		&a.AssociationIDs, &a.PublicIPs, &a.InstanceProfileARNs} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
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
			EventName         string `json:"eventName"`
			ErrorCode         string `json:"errorCode"`
			RequestParameters any    `json:"requestParameters"`
			ResponseElements  any    `json:"responseElements"`
		}
		if err := json.Unmarshal(env.Detail, &d); err != nil || d.EventName == "" {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: CloudTrail detail has no eventName", env.ID, ErrMalformedEvent)
		}
		if !slices.Contains(AddressAPICalls, d.EventName) {
			return Event{}, fmt.Errorf("locker: parse event %s: %w: API call %s does not change addresses", env.ID, ErrUnsupportedEvent, d.EventName)
		}
		ev.Kind, ev.APICall, ev.ErrorCode = KindAPICall, d.EventName, d.ErrorCode
		ev.Refs.collect(d.RequestParameters, 0)
		ev.Refs.collect(d.ResponseElements, 0)
		ev.Refs.normalize()
	default:
		return Event{}, fmt.Errorf("locker: parse event %s: %w: detail-type %q from source %q", env.ID, ErrUnsupportedEvent, dt, src)
	}
	return ev, nil
}
