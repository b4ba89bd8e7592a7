package organization

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// BusProps configures the central event bus.
type BusProps struct {
	// OrganizationID (o-...) is the only organisation whose principals may put events. Required.
	OrganizationID string
	// Name is the bus's name. Default DefaultBusName.
	Name string
}

var busNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,256}$`)

// BusPolicySid is the Sid of the bus policy's only statement.
const BusPolicySid = "OrganizationPutsEvents"

// NewBus creates the central event bus that member accounts forward instance-role CloudTrail
// calls to. Its resource policy has one statement: events:PutEvents on this bus, for any
// principal whose account is in the organisation (aws:PrincipalOrgID). A forwarding rule puts
// events as its role (MemberProps: the role of each member account's rule), so that is the
// principal the condition sees. Nothing else (PutRule, PutTargets) is granted to anyone.
//
// Events keep the account and Region they were emitted in, and no caller can put an event
// whose source starts with "aws." (EventBridge refuses it): a consumer that matches source
// "aws.*" only gets the forwarded CloudTrail events, not events a member account made up.
func NewBus(scope constructs.Construct, id string, props *BusProps) (awsevents.EventBus, error) {
	if props == nil {
		return nil, errors.New("organization: BusProps is required")
	}
	if err := CheckOrganizationID(props.OrganizationID); err != nil {
		return nil, fmt.Errorf("organization: BusProps.OrganizationID: %w", err)
	}
	name := props.Name
	if name == "" {
		name = DefaultBusName
	}
	if !busNameRE.MatchString(name) || name == "default" {
		return nil, fmt.Errorf("organization: BusProps.Name %q is not a custom event bus name", name)
	}
	bus := awsevents.NewEventBus(scope, jsii.String(id), &awsevents.EventBusProps{
		EventBusName: jsii.String(name),
		Description:  jsii.String("Defenders: instance-role CloudTrail calls forwarded by the organisation's accounts"),
	})
	bus.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String(BusPolicySid),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("events:PutEvents"),
		Resources:  &[]*string{bus.EventBusArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": props.OrganizationID}},
	}))
	return bus, nil
}
