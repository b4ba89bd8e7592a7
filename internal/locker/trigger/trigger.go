// Package trigger names the EventBridge events that run the locker: the
// detail types and sources it accepts, the instance states its state-change
// rule routes, and the EC2 API calls whose CloudTrail events it handles.
//
// It is a package of its own, with no dependency beyond the standard
// library, so that constructs/locker (which writes the EventBridge rules)
// and internal/locker (which parses what the rules deliver) read one list,
// and the construct does not link the AWS SDK's EC2 and IAM clients.
package trigger

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
	// EventSourceEC2 is the CloudTrail eventSource of EC2 API calls.
	EventSourceEC2 = "ec2.amazonaws.com"
)

// States are the instance states whose state-change events the locker's
// rule routes to it: running (a new address), stopped (the address is
// released), shutting-down (the last moment EC2 still shows the instance's
// instance profile, so that its own role can be reconciled) and terminated
// (a second chance, see "Which instances" in internal/locker).
var States = []string{"running", "stopped", "shutting-down", "terminated"}

// AddressAPICalls are the EC2 API calls that change an instance's public
// addresses or instance profile without a state change: Elastic IPs
// associated and disassociated, IPv6 addresses assigned and unassigned,
// network interfaces attached, detached and modified, instance profiles
// associated, replaced and disassociated. They are write management
// events: an EventBridge rule in the default state ENABLED receives them
// whenever a CloudTrail trail logs management events (read/write "All" or
// "WriteOnly").
var AddressAPICalls = []string{
	"AssociateAddress", "DisassociateAddress",
	"AssignIpv6Addresses", "UnassignIpv6Addresses",
	"AttachNetworkInterface", "DetachNetworkInterface",
	"AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation", "DisassociateIamInstanceProfile",
	"ModifyNetworkInterfaceAttribute",
}
