package shadow

import (
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// The world of the scenarios. Addresses come from the documentation ranges
// (RFC 5737, RFC 3849) and private ranges; ids are made up.
const (
	account      = "111122223333"
	exemptAcct   = "444455556666" // an account the SCP exempts
	region       = "us-east-1"
	role         = "luke-role"
	roleID       = "AROAYEXAMPLEROLEID01"
	instanceID   = "i-0abc1234def567890"
	secondID     = "i-0def5678abc123456"
	publicIP     = "203.0.113.10"
	elasticIP    = "203.0.113.11"
	privateIP    = "10.0.1.23"
	instanceIPv6 = "2001:db8:1234::10"
	natIP        = "192.0.2.50"
	neighbourIP  = "10.0.1.99"
	attackerIP   = "198.51.100.77"
	attackerIPv6 = "2001:db8:dead::1"

	instanceVPC    = "vpc-0123456789abcdef0"
	otherVPC       = "vpc-0fedcba9876543210"
	sharedVPC      = "vpc-0aaaa1111bbbb2222"
	endpointID     = "vpce-0aaaabbbbccccdddd"
	otherVPCE      = "vpce-0111122223333444"
	sharedEndpoint = "vpce-0bbbb2222cccc3333"
	unmappedVPCE   = "vpce-0999988887777666"

	centralEgress = "192.0.2.128/28"
	centralNATIP  = "192.0.2.130"

	exemptTag = "defenders-exempt"
)

// allowPolicy stands in for the role's grants (AmazonEC2ReadOnlyAccess).
const allowPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`

// theInstance is what the inventory knows of instanceID.
var theInstance = Instance{VPC: instanceVPC, PrivateIPv4: privateIP, Region: region}

// endpoints maps every endpoint but unmappedVPCE to its VPC.
var endpoints = map[string]string{endpointID: instanceVPC, otherVPCE: otherVPC, sharedEndpoint: sharedVPC}

// call describes one CloudTrail record of the scenarios.
type call struct {
	account   string // default account
	role      string // default role
	session   string // default instanceID; the session name of an assumed role
	delivery  string // ec2RoleDelivery; default "2.0" for instance sessions, "-" for none
	iamUser   string // an IAM user instead of a role session
	src       string // sourceIPAddress
	vpce      string // vpcEndpointId
	invokedBy string
	at        time.Time
	source    string // eventSource, default ec2.amazonaws.com
	name      string // eventName, default DescribeInstances
}

// identity is the call's userIdentity.
func (c call) identity() cloudtrailtest.Identity {
	acct := or(c.account, account)
	if c.iamUser != "" {
		return cloudtrailtest.Identity{
			Type: "IAMUser", PrincipalID: "AIDAYEXAMPLEUSERID01", ARN: "arn:aws:iam::" + acct + ":user/" + c.iamUser,
			AccountID: acct, AccessKeyID: "AKIAYEXAMPLEUSERKEY1", UserName: c.iamUser, InvokedBy: c.invokedBy,
		}
	}
	r, session := or(c.role, role), or(c.session, instanceID)
	delivery := c.delivery
	switch {
	case delivery == "-":
		delivery = ""
	case delivery == "" && validInstanceID(session):
		delivery = "2.0"
	}
	return cloudtrailtest.Identity{
		Type: "AssumedRole", PrincipalID: roleID + ":" + session,
		ARN:       "arn:aws:sts::" + acct + ":assumed-role/" + r + "/" + session,
		AccountID: acct, AccessKeyID: "ASIAYEXAMPLEINSTKEY1", InvokedBy: c.invokedBy,
		IssuerType: "Role", IssuerPrincipal: roleID, IssuerARN: "arn:aws:iam::" + acct + ":role/" + r, IssuerUserName: r,
		EC2RoleDelivery: delivery, CreationDate: time.Date(2024, 5, 14, 9, 0, 0, 0, time.UTC),
	}
}

// principal is the ARN an IAM engine sees as the caller.
func (c call) principal() string { return c.identity().ARN }

// json renders the record as CloudTrail writes it.
func (c call) json() []byte {
	return cloudtrailtest.Event{
		Identity: c.identity(), Time: c.at, EventSource: or(c.source, "ec2.amazonaws.com"),
		EventName: or(c.name, "DescribeInstances"), Region: region, SourceIP: c.src, VPCEndpointID: c.vpce,
		RecipientAccount: or(c.account, account), Management: true, ReadOnly: true,
	}.JSON()
}

// record decodes the record, as the detector would.
func (c call) record(t testing.TB) cloudtrail.Record {
	t.Helper()
	rec, err := cloudtrail.ParseRecord(c.json())
	if err != nil {
		t.Fatalf("ParseRecord: %v", err)
	}
	return rec
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// render renders a lock or fails the test.
func render(t testing.TB, l lockpolicy.Lock) lockpolicy.Document {
	t.Helper()
	doc, err := lockpolicy.Render(l, lockpolicy.Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return doc
}

// compile compiles a document or fails the test.
func compile(t testing.TB, doc lockpolicy.Document) *Policy {
	t.Helper()
	p, err := Compile(doc)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func deny(sid string, cond map[string]map[string]any) lockpolicy.Statement {
	return lockpolicy.Statement{Sid: sid, Effect: "Deny", Action: "*", Resource: "*", Condition: cond}
}

// scpDocument is an SCP in the vocabulary lockpolicy.SCP renders
// (Null ec2:SourceInstanceARN, StringNotEquals aws:PrincipalAccount and
// aws:PrincipalTag/KEY next to the lock's statements): instance
// credentials of every account but exemptAcct, of every principal without
// the exemption tag, work only from centralEgress or through an endpoint of
// their own VPC from their own host.
func scpDocument() lockpolicy.Document {
	exempt := func(m map[string]any) map[string]any {
		m["aws:PrincipalAccount"] = exemptAcct
		m["aws:PrincipalTag/"+exemptTag] = "true"
		return m
	}
	notVia := map[string]any{"aws:ViaAWSService": "false"}
	return lockpolicy.Document{Version: lockpolicy.PolicyVersion, Statement: []lockpolicy.Statement{
		deny("DenyInstanceCredentialsOverTheInternet", map[string]map[string]any{
			"NotIpAddress":    {"aws:SourceIp": centralEgress},
			"Null":            {"aws:SourceIp": "false", "ec2:SourceInstanceARN": "false"},
			"StringNotEquals": exempt(map[string]any{}),
			"BoolIfExists":    notVia,
		}),
		deny("DenyInstanceCredentialsOutsideTheirVpc", map[string]map[string]any{
			"StringNotEquals": exempt(map[string]any{"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"}),
			"Null":            {"aws:SourceIp": "true", "aws:SourceVpc": "false", "ec2:SourceInstanceARN": "false"},
			"BoolIfExists":    notVia,
		}),
		deny("DenyInstanceCredentialsFromOtherHosts", map[string]map[string]any{
			"StringNotEquals": exempt(map[string]any{"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"}),
			"Null":            {"aws:SourceIp": "true", "aws:VpcSourceIp": "false", "ec2:SourceInstanceARN": "false"},
			"BoolIfExists":    notVia,
		}),
	}}
}

// operatorsDocument exercises the operators the locks do not use:
// IpAddress, StringEquals, Bool, ArnNotLike, ArnEqualsIfExists,
// StringNotEqualsIfExists, a policy variable inside a longer value.
func operatorsDocument() lockpolicy.Document {
	return lockpolicy.Document{Version: lockpolicy.PolicyVersion, Statement: []lockpolicy.Statement{
		deny("DenyFromAttackerRanges", map[string]map[string]any{
			"IpAddress": {"aws:SourceIp": []string{"198.51.100.0/24", "2001:db8:dead::/48"}},
		}),
		deny("DenyForeignInstances", map[string]map[string]any{
			"ArnNotLike": {"ec2:SourceInstanceARN": "arn:aws:ec2:*:" + account + ":instance/i-0abc*"},
			"Null":       {"ec2:SourceInstanceARN": "false"},
		}),
		deny("DenyThroughTheOtherEndpoint", map[string]map[string]any{
			"StringEquals": {"aws:SourceVpce": otherVPCE},
		}),
		deny("DenyServiceCalls", map[string]map[string]any{
			"Bool": {"aws:ViaAWSService": "true"},
		}),
		deny("DenyOtherRolesInTheAccount", map[string]map[string]any{
			"ArnEqualsIfExists":       {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:role/*"},
			"StringNotEqualsIfExists": {"aws:PrincipalArn": "arn:aws:iam::" + account + ":role/" + role},
			"StringEquals":            {"aws:PrincipalAccount": account},
		}),
	}}
}
