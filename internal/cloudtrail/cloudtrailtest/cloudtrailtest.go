// Package cloudtrailtest builds realistic CloudTrail records and the
// envelopes they are delivered in (EventBridge events, CloudWatch Logs
// subscription payloads, Lambda CWL and Kinesis events) for tests,
// fuzz seeds and benchmarks. It is not used in production code.
//
// Records follow the CloudTrail record schema (eventVersion 1.08 to 1.10,
// userIdentity with sessionContext and ec2RoleDelivery, tlsDetails, ...).
// Addresses come from the documentation ranges (RFC 5737, RFC 3849) and
// private ranges, account ids and resource ids are made up.
package cloudtrailtest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// The canonical fixture world: one account with one instance whose role
// credentials are used legitimately and illegitimately.
const (
	Account         = "111122223333"           // the account everything runs in
	OtherAccount    = "444455556666"           // an unrelated (attacker) account
	Region          = "eu-west-1"              // region of the calls
	InstanceID      = "i-0a1b2c3d4e5f60718"    // the protected instance (17 hex digits)
	OldInstanceID   = "i-1a2b3c4d"             // an instance with an old 8-hex-digit id
	UnknownInstance = "i-0fedcba9876543210"    // an instance the inventory does not know
	InstanceRole    = "web-server-role"        // the instance profile role name
	RoleID          = "AROAYEXAMPLEROLEID01"   // the instance role's id
	VpcID           = "vpc-0123456789abcdef0"  // the instance's VPC
	OwnEndpoint     = "vpce-0aaaabbbbccccdddd" // an interface endpoint in the instance's VPC
	ForeignEndpoint = "vpce-0ffff0000eeee1111" // an endpoint in another (attacker) VPC
	PublicIP        = "198.51.100.10"          // the instance's public IPv4 address
	ElasticIP       = "198.51.100.20"          // an Elastic IP on the instance's second ENI
	PublicIPv6      = "2001:db8:1:2::10"       // the instance's IPv6 address
	PrivateIP       = "10.0.1.10"              // the instance's private IPv4 address
	OtherPrivateIP  = "10.0.9.99"              // a private address of another machine
	NATIP           = "192.0.2.50"             // the public IP of the VPC's NAT gateway
	AttackerIP      = "203.0.113.66"           // where stolen credentials are used from
	DetectorRole    = "defenders-detector"     // the detector Lambda's role name
	DetectorRoleARN = "arn:aws:iam::" + Account + ":role/" + DetectorRole
	InstanceRoleARN = "arn:aws:iam::" + Account + ":role/" + InstanceRole
)

// Identity describes a CloudTrail userIdentity element.
type Identity struct {
	Type            string
	PrincipalID     string
	ARN             string
	AccountID       string
	AccessKeyID     string
	UserName        string
	InvokedBy       string
	IssuerType      string // sessionIssuer.type; empty for no sessionContext
	IssuerPrincipal string
	IssuerARN       string
	IssuerUserName  string
	EC2RoleDelivery string
	CreationDate    time.Time
}

// InstanceIdentity is the identity of a call made with the credentials of
// instanceID's instance profile role (delivered by IMDSv2 when delivery is
// "2.0").
func InstanceIdentity(instanceID, delivery string) Identity {
	return Identity{
		Type:            "AssumedRole",
		PrincipalID:     RoleID + ":" + instanceID,
		ARN:             "arn:aws:sts::" + Account + ":assumed-role/" + InstanceRole + "/" + instanceID,
		AccountID:       Account,
		AccessKeyID:     "ASIAYEXAMPLEINSTKEY1",
		IssuerType:      "Role",
		IssuerPrincipal: RoleID,
		IssuerARN:       InstanceRoleARN,
		IssuerUserName:  InstanceRole,
		EC2RoleDelivery: delivery,
		CreationDate:    time.Date(2024, 5, 14, 9, 12, 0, 0, time.UTC),
	}
}

// IAMUserIdentity is the identity of an IAM user with a long-term key.
func IAMUserIdentity(user string) Identity {
	return Identity{
		Type:        "IAMUser",
		PrincipalID: "AIDAYEXAMPLEUSERID01",
		ARN:         "arn:aws:iam::" + Account + ":user/" + user,
		AccountID:   Account,
		AccessKeyID: "AKIAYEXAMPLEUSERKEY1",
		UserName:    user,
	}
}

// RoleSessionIdentity is the identity of an assumed-role session named
// session of role (a Lambda function's role uses the function name).
func RoleSessionIdentity(role, roleID, session string) Identity {
	return Identity{
		Type:            "AssumedRole",
		PrincipalID:     roleID + ":" + session,
		ARN:             "arn:aws:sts::" + Account + ":assumed-role/" + role + "/" + session,
		AccountID:       Account,
		AccessKeyID:     "ASIAYEXAMPLESESSKEY1",
		IssuerType:      "Role",
		IssuerPrincipal: roleID,
		IssuerARN:       "arn:aws:iam::" + Account + ":role/" + role,
		IssuerUserName:  role,
		CreationDate:    time.Date(2024, 5, 14, 9, 0, 0, 0, time.UTC),
	}
}

// Event describes one CloudTrail record.
type Event struct {
	Version              string // eventVersion; default "1.09"
	Identity             Identity
	Time                 time.Time // default 2024-05-14T10:00:00Z
	EventSource          string    // default "s3.amazonaws.com"
	EventName            string    // default "ListBuckets"
	Region               string    // default Region
	SourceIP             string
	UserAgent            string // default an AWS SDK for Go v2 agent
	ErrorCode            string
	ErrorMessage         string
	RequestParameters    string // raw JSON; default null
	ResponseElements     string // raw JSON; default null
	AdditionalEventData  string // raw JSON; omitted when empty
	RequestID            string // default derived from EventID
	EventID              string // default a fixed UUID
	ReadOnly             bool
	EventType            string // default "AwsApiCall"
	Management           bool
	RecipientAccount     string // default Account
	VPCEndpointID        string
	VPCEndpointAccountID string
	TLS                  bool   // add tlsDetails
	Host                 string // tlsDetails.clientProvidedHostHeader; default from EventSource
}

type sessionIssuer struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"`
}

type sessionContext struct {
	SessionIssuer       sessionIssuer     `json:"sessionIssuer"`
	WebIDFederationData struct{}          `json:"webIdFederationData"`
	Attributes          map[string]string `json:"attributes"`
	EC2RoleDelivery     string            `json:"ec2RoleDelivery,omitempty"`
}

type userIdentity struct {
	Type           string          `json:"type"`
	PrincipalID    string          `json:"principalId"`
	ARN            string          `json:"arn"`
	AccountID      string          `json:"accountId"`
	AccessKeyID    string          `json:"accessKeyId,omitempty"`
	UserName       string          `json:"userName,omitempty"`
	SessionContext *sessionContext `json:"sessionContext,omitempty"`
	InvokedBy      string          `json:"invokedBy,omitempty"`
}

type tlsDetails struct {
	TLSVersion               string `json:"tlsVersion"`
	CipherSuite              string `json:"cipherSuite"`
	ClientProvidedHostHeader string `json:"clientProvidedHostHeader"`
}

// record has CloudTrail's field order.
type record struct {
	EventVersion         string          `json:"eventVersion"`
	UserIdentity         userIdentity    `json:"userIdentity"`
	EventTime            string          `json:"eventTime"`
	EventSource          string          `json:"eventSource"`
	EventName            string          `json:"eventName"`
	AWSRegion            string          `json:"awsRegion"`
	SourceIPAddress      string          `json:"sourceIPAddress"`
	UserAgent            string          `json:"userAgent"`
	ErrorCode            string          `json:"errorCode,omitempty"`
	ErrorMessage         string          `json:"errorMessage,omitempty"`
	RequestParameters    json.RawMessage `json:"requestParameters"`
	ResponseElements     json.RawMessage `json:"responseElements"`
	AdditionalEventData  json.RawMessage `json:"additionalEventData,omitempty"`
	RequestID            string          `json:"requestID"`
	EventID              string          `json:"eventID"`
	ReadOnly             bool            `json:"readOnly"`
	EventType            string          `json:"eventType"`
	ManagementEvent      bool            `json:"managementEvent"`
	RecipientAccountID   string          `json:"recipientAccountId"`
	VPCEndpointID        string          `json:"vpcEndpointId,omitempty"`
	VPCEndpointAccountID string          `json:"vpcEndpointAccountId,omitempty"`
	EventCategory        string          `json:"eventCategory"`
	TLSDetails           *tlsDetails     `json:"tlsDetails,omitempty"`
}

// JSON renders the record as compact JSON, as CloudTrail writes it.
func (e Event) JSON() []byte {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	raw := func(v string) json.RawMessage {
		if v == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(v)
	}
	t := e.Time
	if t.IsZero() {
		t = time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)
	}
	id := e.Identity
	r := record{
		EventVersion: def(e.Version, "1.09"),
		UserIdentity: userIdentity{
			Type:        id.Type,
			PrincipalID: id.PrincipalID,
			ARN:         id.ARN,
			AccountID:   id.AccountID,
			AccessKeyID: id.AccessKeyID,
			UserName:    id.UserName,
			InvokedBy:   id.InvokedBy,
		},
		EventTime:            t.UTC().Format(time.RFC3339),
		EventSource:          def(e.EventSource, "s3.amazonaws.com"),
		EventName:            def(e.EventName, "ListBuckets"),
		AWSRegion:            def(e.Region, Region),
		SourceIPAddress:      e.SourceIP,
		UserAgent:            def(e.UserAgent, "aws-sdk-go-v2/1.30.3 ua/2.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#arm64 api/s3#1.58.2"),
		ErrorCode:            e.ErrorCode,
		ErrorMessage:         e.ErrorMessage,
		RequestParameters:    raw(e.RequestParameters),
		ResponseElements:     raw(e.ResponseElements),
		EventID:              def(e.EventID, "5b1bd5d8-0a3c-4b4c-9d55-0a5c1f8e2b41"),
		ReadOnly:             e.ReadOnly,
		EventType:            def(e.EventType, "AwsApiCall"),
		ManagementEvent:      e.Management,
		RecipientAccountID:   def(e.RecipientAccount, Account),
		VPCEndpointID:        e.VPCEndpointID,
		VPCEndpointAccountID: e.VPCEndpointAccountID,
		EventCategory:        "Management",
	}
	if !e.Management {
		r.EventCategory = "Data"
	}
	r.RequestID = def(e.RequestID, strings.ToUpper(strings.ReplaceAll(r.EventID, "-", ""))[:16])
	if e.AdditionalEventData != "" {
		r.AdditionalEventData = json.RawMessage(e.AdditionalEventData)
	}
	if id.IssuerType != "" {
		r.UserIdentity.SessionContext = &sessionContext{
			SessionIssuer: sessionIssuer{
				Type:        id.IssuerType,
				PrincipalID: id.IssuerPrincipal,
				ARN:         id.IssuerARN,
				AccountID:   id.AccountID,
				UserName:    id.IssuerUserName,
			},
			Attributes: map[string]string{
				"creationDate":     id.CreationDate.UTC().Format(time.RFC3339),
				"mfaAuthenticated": "false",
			},
			EC2RoleDelivery: id.EC2RoleDelivery,
		}
	}
	if e.TLS {
		r.TLSDetails = &tlsDetails{
			TLSVersion:               "TLSv1.3",
			CipherSuite:              "TLS_AES_128_GCM_SHA256",
			ClientProvidedHostHeader: def(e.Host, strings.TrimSuffix(r.EventSource, ".amazonaws.com")+"."+r.AWSRegion+".amazonaws.com"),
		}
	}
	return marshal(r)
}

// marshal encodes v as compact JSON without HTML escaping (CloudTrail does
// not escape <, > and &).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("cloudtrailtest: marshal: %v", err)) // fixtures are static; a failure is a bug
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// LogEvent is one CloudWatch Logs log event; Message is usually a record.
type LogEvent struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// cwlPayload is the CloudWatch Logs subscription payload.
type cwlPayload struct {
	MessageType         string     `json:"messageType"`
	Owner               string     `json:"owner"`
	LogGroup            string     `json:"logGroup"`
	LogStream           string     `json:"logStream"`
	SubscriptionFilters []string   `json:"subscriptionFilters"`
	LogEvents           []LogEvent `json:"logEvents"`
}

// CWLPayload renders a decompressed DATA_MESSAGE payload with one log
// event per record.
func CWLPayload(records ...[]byte) []byte {
	evs := make([]LogEvent, len(records))
	for i, r := range records {
		evs[i] = LogEvent{
			ID:        fmt.Sprintf("3814856129847193847561029384756102938475610293847%05d", i),
			Timestamp: 1715680800000 + int64(i),
			Message:   string(r),
		}
	}
	return CWLPayloadEvents("DATA_MESSAGE", evs...)
}

// CWLPayloadEvents renders a decompressed payload of the given message type
// with arbitrary log events.
func CWLPayloadEvents(messageType string, events ...LogEvent) []byte {
	if events == nil {
		events = []LogEvent{}
	}
	return marshal(cwlPayload{
		MessageType:         messageType,
		Owner:               Account,
		LogGroup:            "aws-cloudtrail-logs-" + Account,
		LogStream:           Account + "_CloudTrail_" + Region,
		SubscriptionFilters: []string{"defenders-detector"},
		LogEvents:           events,
	})
}

// ControlPayload is the payload CloudWatch Logs sends to check that a
// subscription destination is reachable.
func ControlPayload() []byte {
	return marshal(cwlPayload{
		MessageType:         "CONTROL_MESSAGE",
		Owner:               "CloudwatchLogs",
		LogGroup:            "",
		LogStream:           "",
		SubscriptionFilters: []string{},
		LogEvents: []LogEvent{{
			ID:        "",
			Timestamp: 1715680800000,
			Message:   "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
		}},
	})
}

// gzipWriters reuses compressors, whose state is large, across Gzip calls.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	w.Reset(&buf)
	_, _ = w.Write(b) // writes to a bytes.Buffer cannot fail
	_ = w.Close()
	return buf.Bytes()
}

// CWLData is the awslogs.data string for a payload: base64 of gzip.
func CWLData(payload []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(Gzip(payload)))
}

// CWLEvent is the Lambda event of a CloudWatch Logs subscription carrying
// payload.
func CWLEvent(payload []byte) []byte {
	return []byte(`{"awslogs":{"data":"` + string(CWLData(payload)) + `"}}`)
}

// KinesisEvent is a Lambda Kinesis event with one record per payload, each
// gzip'd as CloudWatch Logs writes them to a stream.
func KinesisEvent(payloads ...[]byte) []byte {
	type kinesis struct {
		SchemaVersion string  `json:"kinesisSchemaVersion"`
		PartitionKey  string  `json:"partitionKey"`
		Sequence      string  `json:"sequenceNumber"`
		Data          []byte  `json:"data"`
		Arrival       float64 `json:"approximateArrivalTimestamp"`
	}
	type rec struct {
		Kinesis        kinesis `json:"kinesis"`
		EventSource    string  `json:"eventSource"`
		EventVersion   string  `json:"eventVersion"`
		EventID        string  `json:"eventID"`
		EventName      string  `json:"eventName"`
		InvokeIdentity string  `json:"invokeIdentityArn"`
		AWSRegion      string  `json:"awsRegion"`
		EventSourceARN string  `json:"eventSourceARN"`
	}
	recs := make([]rec, len(payloads))
	for i, p := range payloads {
		seq := KinesisSequence(i)
		recs[i] = rec{
			Kinesis: kinesis{
				SchemaVersion: "1.0",
				PartitionKey:  "a1b2c3d4e5f60718293a4b5c6d7e8f90",
				Sequence:      seq,
				Data:          Gzip(p),
				Arrival:       1715680801.123,
			},
			EventSource:    "aws:kinesis",
			EventVersion:   "1.0",
			EventID:        "shardId-000000000000:" + seq,
			EventName:      "aws:kinesis:record",
			InvokeIdentity: "arn:aws:iam::" + Account + ":role/defenders-detector",
			AWSRegion:      Region,
			EventSourceARN: "arn:aws:kinesis:" + Region + ":" + Account + ":stream/defenders-cloudtrail",
		}
	}
	return marshal(map[string]any{"Records": recs})
}

// KinesisSequence is the sequence number KinesisEvent gives its i-th record.
func KinesisSequence(i int) string {
	return fmt.Sprintf("4964553726598304887692019830948572093485720938457%07d", i)
}

// EventBridge wraps record in an EventBridge "AWS API Call via CloudTrail"
// event.
func EventBridge(record []byte) []byte {
	return EventBridgeType("AWS API Call via CloudTrail", record)
}

// EventBridgeType wraps detail in an EventBridge event of the given detail
// type.
func EventBridgeType(detailType string, detail []byte) []byte {
	return marshal(map[string]any{
		"version":     "0",
		"id":          "6f1d2b8c-2a74-4f0b-9c1e-3d7f2a9b5e10",
		"detail-type": detailType,
		"source":      "aws.s3",
		"account":     Account,
		"time":        "2024-05-14T10:00:00Z",
		"region":      Region,
		"resources":   []string{},
		"detail":      json.RawMessage(detail),
	})
}

// Scenario names one of the canonical fixture records.
type Scenario string

// The canonical scenarios. Each is a realistic record; the detector's
// expected decision is in the comment.
const (
	InstanceFromPublicIP      Scenario = "instance call from its public IP"            // OK
	InstanceFromElasticIP     Scenario = "instance call from its Elastic IP"           // OK
	InstanceFromIPv6          Scenario = "instance call from its IPv6 address"         // OK
	InstanceViaNAT            Scenario = "instance call through its VPC's NAT gateway" // OK
	InstanceViaOwnEndpoint    Scenario = "instance call through its VPC's endpoint"    // OK
	InstanceViaForeignVPCE    Scenario = "stolen credentials through a foreign VPC endpoint"
	InstanceIMDSv1Old         Scenario = "old 8-hex-digit instance calling with IMDSv1 credentials" // OK
	InstanceAWSService        Scenario = "AWS service acting with instance credentials"             // skipped
	InstanceAWSInternal       Scenario = "AWS internal call with instance credentials"              // skipped
	StolenFromForeignIP       Scenario = "stolen instance credentials used from a foreign IP"       // BadSource HIGH
	StolenFailedCall          Scenario = "stolen instance credentials used from a foreign IP, access denied"
	UnknownInstanceCall       Scenario = "credentials of an instance the inventory does not know" // InstanceMissing
	IAMUserCall               Scenario = "IAM user call"                                          // not an instance session
	LambdaRoleCall            Scenario = "Lambda function role call"                              // not an instance session
	DetectorOwnCall           Scenario = "the detector's own DescribeInstances call"              // not an instance session / own
	DetectorOnInstanceOwnCall Scenario = "the detector's own call made from an instance"          // own
	FakeInstanceSessionName   Scenario = "role session named like an instance, no ec2RoleDelivery"
)

// Scenarios lists every Scenario in a stable order.
var Scenarios = []Scenario{
	InstanceFromPublicIP, InstanceFromElasticIP, InstanceFromIPv6, InstanceViaNAT,
	InstanceViaOwnEndpoint, InstanceViaForeignVPCE, InstanceIMDSv1Old, InstanceAWSService,
	InstanceAWSInternal, StolenFromForeignIP, StolenFailedCall, UnknownInstanceCall,
	IAMUserCall, LambdaRoleCall, DetectorOwnCall, DetectorOnInstanceOwnCall, FakeInstanceSessionName,
}

// Build returns the Event of a scenario.
func (s Scenario) Build() Event {
	inst := InstanceIdentity(InstanceID, "2.0")
	s3Get := Event{
		Identity:          inst,
		EventSource:       "s3.amazonaws.com",
		EventName:         "GetObject",
		SourceIP:          PublicIP,
		ReadOnly:          true,
		TLS:               true,
		RequestParameters: `{"bucketName":"app-config-111122223333","Host":"app-config-111122223333.s3.eu-west-1.amazonaws.com","key":"prod/settings.json"}`,
		AdditionalEventData: `{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,` +
			`"AuthenticationMethod":"AuthHeader","x-amz-id-2":"bmlbWUvZHVYxKz0uYWNjZXNzLWxvZy1leGFtcGxlLWlkLTI=","bytesTransferredOut":1742}`,
		EventID: "0c5a5b52-8b1a-4f0e-9c73-5e2d1d4f7a01",
	}
	switch s {
	case InstanceFromPublicIP:
		return s3Get
	case InstanceFromElasticIP:
		e := s3Get
		e.SourceIP = ElasticIP
		return e
	case InstanceFromIPv6:
		e := s3Get
		e.SourceIP = PublicIPv6
		return e
	case InstanceViaNAT:
		e := s3Get
		e.SourceIP = NATIP
		return e
	case InstanceViaOwnEndpoint:
		e := s3Get
		e.SourceIP = PrivateIP
		e.VPCEndpointID = OwnEndpoint
		e.VPCEndpointAccountID = Account
		e.Version = "1.10"
		return e
	case InstanceViaForeignVPCE:
		e := s3Get
		e.SourceIP = "172.31.44.7"
		e.VPCEndpointID = ForeignEndpoint
		e.VPCEndpointAccountID = OtherAccount
		e.Version = "1.10"
		return e
	case InstanceIMDSv1Old:
		return Event{
			Version:     "1.08",
			Identity:    InstanceIdentity(OldInstanceID, "1.0"),
			EventSource: "ssm.amazonaws.com",
			EventName:   "UpdateInstanceInformation",
			SourceIP:    "198.51.100.77",
			UserAgent:   "aws-sdk-go/1.44.327 (go1.20.6; linux; amd64) amazon-ssm-agent/3.2.1297.0",
			Management:  true,
			TLS:         true,
			RequestParameters: `{"instanceId":"` + OldInstanceID + `","agentVersion":"3.2.1297.0","agentStatus":"Active",` +
				`"platformType":"Linux","platformName":"Amazon Linux","platformVersion":"2","iPAddress":"10.0.2.44","computerName":"ip-10-0-2-44.eu-west-1.compute.internal","agentName":"amazon-ssm-agent"}`,
			EventID: "2d0e8f4a-51b3-4c1d-8a0e-7b9c6f3e1d02",
		}
	case InstanceAWSService:
		e := Event{
			Identity:          inst,
			EventSource:       "kms.amazonaws.com",
			EventName:         "Decrypt",
			SourceIP:          "s3.amazonaws.com",
			UserAgent:         "s3.amazonaws.com",
			ReadOnly:          true,
			Management:        true,
			RequestParameters: `{"encryptionContext":{"aws:s3:arn":"arn:aws:s3:::app-config-111122223333/prod/settings.json"},"encryptionAlgorithm":"SYMMETRIC_DEFAULT"}`,
			EventID:           "3e1f9a5b-62c4-4d2e-9b1f-8c0d7a4f2e03",
		}
		e.Identity.InvokedBy = "s3.amazonaws.com"
		return e
	case InstanceAWSInternal:
		return Event{
			Identity:    inst,
			EventSource: "sts.amazonaws.com",
			EventName:   "GetCallerIdentity",
			SourceIP:    "AWS Internal",
			UserAgent:   "AWS Internal",
			ReadOnly:    true,
			Management:  true,
			EventID:     "4f2a0b6c-73d5-4e3f-8c2a-9d1e8b5a3f04",
		}
	case StolenFromForeignIP:
		return Event{
			Identity:          inst,
			EventSource:       "s3.amazonaws.com",
			EventName:         "ListBuckets",
			SourceIP:          AttackerIP,
			UserAgent:         "aws-cli/2.15.40 Python/3.11.8 Linux/6.6.15-amd64 exe/x86_64.kali.2024 prompt/off command/s3.ls",
			ReadOnly:          true,
			Management:        true,
			TLS:               true,
			Host:              "s3.amazonaws.com",
			RequestParameters: `{"Host":"s3.amazonaws.com"}`,
			EventID:           "5a3b1c7d-84e6-4f40-9d3b-0e2f9c6b4a05",
		}
	case StolenFailedCall:
		return Event{
			Identity:     inst,
			EventSource:  "iam.amazonaws.com",
			EventName:    "ListUsers",
			SourceIP:     AttackerIP,
			UserAgent:    "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.6.15 md/arch#x86_64 lang/python#3.11.8",
			ErrorCode:    "AccessDenied",
			ErrorMessage: "User: arn:aws:sts::111122223333:assumed-role/web-server-role/i-0a1b2c3d4e5f60718 is not authorized to perform: iam:ListUsers",
			ReadOnly:     true,
			Management:   true,
			TLS:          true,
			Region:       "us-east-1",
			EventID:      "6b4c2d8e-95f7-4a51-8e4c-1f3a0d7c5b06",
		}
	case UnknownInstanceCall:
		e := s3Get
		e.Identity = InstanceIdentity(UnknownInstance, "2.0")
		e.SourceIP = "198.51.100.99"
		e.EventID = "7c5d3e9f-a608-4b62-9f5d-2a4b1e8d6c07"
		return e
	case IAMUserCall:
		return Event{
			Identity:          IAMUserIdentity("ci-deployer"),
			EventSource:       "cloudformation.amazonaws.com",
			EventName:         "DescribeStacks",
			SourceIP:          "192.0.2.200",
			UserAgent:         "aws-cli/2.15.40 Python/3.11.8 Linux/5.15.0-1057-azure exe/x86_64.ubuntu.22 prompt/off command/cloudformation.describe-stacks",
			ReadOnly:          true,
			Management:        true,
			TLS:               true,
			RequestParameters: `{"stackName":"defenders-prod"}`,
			EventID:           "8d6e4f0a-b719-4c73-8a6e-3b5c2f9e7d08",
		}
	case LambdaRoleCall:
		return Event{
			Identity:          RoleSessionIdentity("orders-api-role", "AROAYEXAMPLELAMBDA01", "orders-api"),
			EventSource:       "dynamodb.amazonaws.com",
			EventName:         "DescribeTable",
			SourceIP:          "34.240.1.17",
			UserAgent:         "aws-sdk-go-v2/1.30.3 ua/2.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#arm64 exec-env/AWS_Lambda_provided.al2023 api/dynamodb#1.34.4",
			ReadOnly:          true,
			Management:        true,
			TLS:               true,
			RequestParameters: `{"tableName":"orders"}`,
			EventID:           "9e7f5a1b-c82a-4d84-9b7f-4c6d3a0f8e09",
		}
	case DetectorOwnCall:
		return Event{
			Identity:          RoleSessionIdentity(DetectorRole, "AROAYEXAMPLEDETECT1", "defenders-detector"),
			EventSource:       "ec2.amazonaws.com",
			EventName:         "DescribeInstances",
			SourceIP:          "34.240.1.18",
			UserAgent:         "aws-sdk-go-v2/1.41.0 ua/2.1 os/linux lang/go#1.26 md/GOOS#linux md/GOARCH#arm64 exec-env/AWS_Lambda_provided.al2023 api/ec2#1.344.1",
			ReadOnly:          true,
			Management:        true,
			TLS:               true,
			RequestParameters: `{"instancesSet":{"items":[{"instanceId":"` + InstanceID + `"}]},"filterSet":{}}`,
			EventID:           "af8a6b2c-d93b-4e95-8c8a-5d7e4b1a9f10",
		}
	case DetectorOnInstanceOwnCall:
		id := InstanceIdentity(InstanceID, "2.0")
		id.IssuerARN = DetectorRoleARN
		id.IssuerUserName = DetectorRole
		id.ARN = "arn:aws:sts::" + Account + ":assumed-role/" + DetectorRole + "/" + InstanceID
		return Event{
			Identity:    id,
			EventSource: "ec2.amazonaws.com",
			EventName:   "DescribeNatGateways",
			SourceIP:    AttackerIP, // would alert if not recognised as our own
			ReadOnly:    true,
			Management:  true,
			EventID:     "b09b7c3d-ea4c-4fa6-9d9b-6e8f5c2b0a11",
		}
	case FakeInstanceSessionName:
		e := Event{
			Identity:    RoleSessionIdentity("ops-admin", "AROAYEXAMPLEOPSADM1", InstanceID),
			EventSource: "sts.amazonaws.com",
			EventName:   "GetCallerIdentity",
			SourceIP:    AttackerIP,
			ReadOnly:    true,
			Management:  true,
			EventID:     "c1ac8d4e-fb5d-40b7-8eac-7f9a6d3c1b12",
		}
		return e
	}
	panic(fmt.Sprintf("cloudtrailtest: unknown scenario %q", string(s)))
}

// JSON renders the scenario's record.
func (s Scenario) JSON() []byte { return s.Build().JSON() }

// Mix returns n realistic records, about instanceShare of them made with
// instance credentials (legitimate calls from the instances' public IPs,
// with one in 50 from a foreign address) and the rest from IAM users, AWS
// services and Lambda roles. The instances are InstanceID and
// MixInstance(k) for k < instances. Records average about 1.5 KB. The
// output is deterministic for a given seed.
func Mix(n int, instanceShare float64, instances int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([][]byte, n)
	names := []struct{ source, name, params string }{
		{"s3.amazonaws.com", "GetObject", `{"bucketName":"app-data-111122223333","Host":"app-data-111122223333.s3.eu-west-1.amazonaws.com","key":"uploads/2024/05/14/%08x.json"}`},
		{"s3.amazonaws.com", "PutObject", `{"bucketName":"app-data-111122223333","Host":"app-data-111122223333.s3.eu-west-1.amazonaws.com","key":"exports/%08x.parquet","x-amz-server-side-encryption":"aws:kms"}`},
		{"dynamodb.amazonaws.com", "GetItem", `{"tableName":"sessions","key":{"pk":"user#%08x"},"consistentRead":false,"projectionExpression":"pk, sk, expiresAt"}`},
		{"kms.amazonaws.com", "Decrypt", `{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","encryptionContext":{"aws:lambda:FunctionArn":"arn:aws:lambda:eu-west-1:111122223333:function:fn-%08x"}}`},
		{"sqs.amazonaws.com", "SendMessage", `{"queueUrl":"https://sqs.eu-west-1.amazonaws.com/111122223333/jobs","messageGroupId":"g-%08x"}`},
		{"secretsmanager.amazonaws.com", "GetSecretValue", `{"secretId":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-%08x"}`},
		{"ec2.amazonaws.com", "DescribeInstances", `{"instancesSet":{},"filterSet":{"items":[{"name":"tag:Name","valueSet":{"items":[{"value":"web-%08x"}]}}]}}`},
	}
	for i := range n {
		pick := names[rng.IntN(len(names))]
		e := Event{
			Time:              time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Millisecond),
			EventSource:       pick.source,
			EventName:         pick.name,
			ReadOnly:          rng.IntN(3) > 0,
			Management:        pick.source != "s3.amazonaws.com" && pick.source != "dynamodb.amazonaws.com",
			TLS:               true,
			RequestParameters: fmt.Sprintf(pick.params, rng.Uint32()),
			ResponseElements:  `{"x-amz-request-charged":null,"requestId":"` + fmt.Sprintf("%08X-%04X", rng.Uint32(), rng.Uint32()&0xffff) + `"}`,
			AdditionalEventData: fmt.Sprintf(`{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":%d,`+
				`"AuthenticationMethod":"AuthHeader","x-amz-id-2":"%016x%016x%016x","bytesTransferredOut":%d}`,
				rng.IntN(4096), rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.IntN(1<<20)),
			EventID: fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff),
		}
		if rng.Float64() < instanceShare {
			k := rng.IntN(instances)
			e.Identity = InstanceIdentity(MixInstance(k), "2.0")
			e.SourceIP = MixInstanceIP(k)
			if rng.IntN(50) == 0 {
				e.SourceIP = AttackerIP
			}
		} else {
			switch rng.IntN(4) {
			case 0:
				e.Identity = IAMUserIdentity(fmt.Sprintf("user-%d", rng.IntN(20)))
				e.SourceIP = fmt.Sprintf("192.0.2.%d", rng.IntN(250))
				e.UserAgent = "aws-cli/2.15.40 Python/3.11.8 Linux/6.5.0-1018-aws exe/x86_64.ubuntu.22 prompt/off command/s3api.get-object"
			case 1:
				e.Identity = Identity{Type: "AWSService", InvokedBy: pick.source}
				e.SourceIP = pick.source
				e.UserAgent = pick.source
			default:
				fn := fmt.Sprintf("fn-%d", rng.IntN(30))
				e.Identity = RoleSessionIdentity(fn+"-role", fmt.Sprintf("AROAYEXAMPLEFN%06d", rng.IntN(30)), fn)
				e.SourceIP = fmt.Sprintf("34.240.%d.%d", rng.IntN(250), rng.IntN(250))
				e.UserAgent = "aws-sdk-go-v2/1.30.3 ua/2.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#arm64 exec-env/AWS_Lambda_provided.al2023 api/dynamodb#1.34.4"
			}
		}
		out[i] = e.JSON()
	}
	return out
}

// MixInstance is the id of the k-th instance used by Mix (k = 0 is
// InstanceID).
func MixInstance(k int) string {
	if k == 0 {
		return InstanceID
	}
	return fmt.Sprintf("i-0%016x", 0xabc000+k)
}

// MixInstanceIP is the public IP of MixInstance(k) (k = 0 is PublicIP).
func MixInstanceIP(k int) string {
	if k == 0 {
		return PublicIP
	}
	return fmt.Sprintf("198.51.100.%d", 100+k%150)
}

// Organisation and multi-region fixtures. An organisation trail delivers
// the records of every member account to one place (its S3 bucket and
// CloudWatch Logs log group), and a multi-region trail those of every
// region; CloudTrail records calls to global services (IAM, the STS global
// endpoint, ...) with awsRegion us-east-1, and EventBridge delivers them in
// us-east-1 only.
const (
	// MemberAccount is another account of Account's organisation.
	MemberAccount = "777788889999"
	// GlobalRegion is the awsRegion of calls to global services.
	GlobalRegion = "us-east-1"
)

// InAccount returns the same identity in another account: accountId, the
// session ARN and the issuer role's ARN and account name account, as in the
// records of that account.
func (id Identity) InAccount(account string) Identity {
	swap := func(arn string) string {
		parts := strings.SplitN(arn, ":", 6)
		if len(parts) == 6 && parts[0] == "arn" {
			parts[4] = account
			return strings.Join(parts, ":")
		}
		return arn
	}
	id.AccountID = account
	id.ARN = swap(id.ARN)
	id.IssuerARN = swap(id.IssuerARN)
	return id
}

// Stolen returns a stolen-credential record of the fixture instance used
// from attacker address ip.
func Stolen(ip string, n int) []byte {
	e := StolenFromForeignIP.Build()
	e.SourceIP = ip
	e.EventID = fmt.Sprintf("5a3b1c7d-84e6-4f40-9d3b-%012d", n)
	return e.JSON()
}

// AttackerAddr returns the i-th attacker address.
func AttackerAddr(i int) string { return fmt.Sprintf("203.0.113.%d", 1+i%250) }

// StolenBatch returns a CloudWatch Logs event with n stolen-credential
// records from n addresses, and the uniq_ids they must raise.
func StolenBatch(n int) ([]byte, []string) {
	recs := make([][]byte, n)
	ids := make([]string, n)
	for i := range n {
		recs[i] = Stolen(AttackerAddr(i), i)
		ids[i] = InstanceID + "-" + AttackerAddr(i)
	}
	sort.Strings(ids)
	return CWLEvent(CWLPayload(recs...)), ids
}
