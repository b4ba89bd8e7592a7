package cloudtrail_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func TestParseRecordExtractsDetectionFields(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		check func(t *testing.T, r cloudtrail.Record)
	}{
		{
			name:  "a pretty-printed 1.08 IMDSv1 instance session yields its identity",
			input: readFile(t, "instance_session_imdsv1_v1.08.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				want := cloudtrail.UserIdentity{
					Type:        "AssumedRole",
					PrincipalID: "AROAYEXAMPLEROLEID01:i-0a1b2c3d4e5f60718",
					ARN:         "arn:aws:sts::111122223333:assumed-role/web-server-role/i-0a1b2c3d4e5f60718",
					AccountID:   "111122223333",
					AccessKeyID: "ASIAYEXAMPLEINSTKEY1",
					SessionContext: cloudtrail.SessionContext{
						SessionIssuer: cloudtrail.SessionIssuer{
							Type: "Role", PrincipalID: "AROAYEXAMPLEROLEID01",
							ARN:       "arn:aws:iam::111122223333:role/web-server-role",
							AccountID: "111122223333", UserName: "web-server-role",
						},
						EC2RoleDelivery: "1.0",
					},
				}
				if r.UserIdentity != want {
					t.Errorf("UserIdentity = %+v\nwant %+v", r.UserIdentity, want)
				}
				if r.EventVersion != "1.08" || r.EventName != "GetSecretValue" || r.SourceIPAddress != "198.51.100.10" ||
					r.AWSRegion != "eu-west-1" || r.RecipientAccountID != "111122223333" || r.EventTime != "2024-05-14T10:03:17Z" {
					t.Errorf("unexpected top-level fields: %+v", r)
				}
			},
		},
		{
			name:  "a 1.10 record through a VPC endpoint yields the endpoint and unescapes strings",
			input: readFile(t, "instance_session_vpce_v1.10.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.VPCEndpointID != "vpce-0aaaabbbbccccdddd" || r.VPCEndpointAccountID != "111122223333" {
					t.Errorf("endpoint = %q/%q", r.VPCEndpointID, r.VPCEndpointAccountID)
				}
				if r.UserIdentity.SessionContext.EC2RoleDelivery != "2.0" || r.SourceIPAddress != "10.0.1.10" {
					t.Errorf("identity/source = %+v %q", r.UserIdentity, r.SourceIPAddress)
				}
			},
		},
		{
			name:  "an IAM user record has no session context",
			input: readFile(t, "iam_user_v1.09.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.UserIdentity.Type != "IAMUser" || r.UserIdentity.UserName != "ci-deployer" ||
					r.UserIdentity.SessionContext != (cloudtrail.SessionContext{}) {
					t.Errorf("UserIdentity = %+v", r.UserIdentity)
				}
			},
		},
		{
			name:  "an organisation trail's record of a member account names that account twice",
			input: readFile(t, "org_trail_member_instance_v1.09.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				ui := &r.UserIdentity
				if ui.AccountID != "777788889999" || r.RecipientAccountID != "777788889999" ||
					ui.SessionContext.SessionIssuer.AccountID != "777788889999" || ui.PrincipalID != "AROAZEXAMPLEMEMBER001:i-0c1c2c3c4c5c6c7c8" {
					t.Errorf("accounts = %q/%q/%q, principal %q", ui.AccountID, r.RecipientAccountID,
						ui.SessionContext.SessionIssuer.AccountID, ui.PrincipalID)
				}
				if r.AWSRegion != "eu-central-1" || r.EventName != "GetObject" || ui.SessionContext.EC2RoleDelivery != "2.0" {
					t.Errorf("unexpected fields: %+v", r)
				}
			},
		},
		{
			name:  "the resource owner's copy of a cross-account call names the caller in userIdentity and the owner as recipient",
			input: readFile(t, "cross_account_kms_resource_owner_v1.09.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.UserIdentity.AccountID != "111122223333" || r.RecipientAccountID != "777788889999" {
					t.Errorf("accountId %q, recipientAccountId %q", r.UserIdentity.AccountID, r.RecipientAccountID)
				}
				if r.EventSource != "kms.amazonaws.com" || r.SourceIPAddress != "198.51.100.10" {
					t.Errorf("unexpected fields: %+v", r)
				}
			},
		},
		{
			name:  "a global service call is recorded in us-east-1 whatever the caller's region",
			input: readFile(t, "global_iam_from_instance_v1.09.json"),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.AWSRegion != "us-east-1" || r.EventSource != "iam.amazonaws.com" ||
					r.UserIdentity.PrincipalID != "AROAYEXAMPLEROLEID01:i-0e1e2e3e4e5e6e7e8" || r.SourceIPAddress != "192.0.2.77" {
					t.Errorf("unexpected fields: %+v", r)
				}
			},
		},
		{
			name:  "an AWS service call yields invokedBy",
			input: cloudtrailtest.InstanceAWSService.JSON(),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.UserIdentity.InvokedBy != "s3.amazonaws.com" || r.SourceIPAddress != "s3.amazonaws.com" {
					t.Errorf("invokedBy/source = %q/%q", r.UserIdentity.InvokedBy, r.SourceIPAddress)
				}
			},
		},
		{
			name:  "a failed call yields its error code",
			input: cloudtrailtest.StolenFailedCall.JSON(),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.ErrorCode != "AccessDenied" {
					t.Errorf("ErrorCode = %q", r.ErrorCode)
				}
			},
		},
		{
			name:  "null values decode as empty strings",
			input: []byte(`{"eventName":null,"userIdentity":{"type":"AssumedRole","sessionContext":null}}`),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.EventName != "" || r.UserIdentity.Type != "AssumedRole" {
					t.Errorf("record = %+v", r)
				}
			},
		},
		{
			name:  "a repeated object key replaces the earlier object as encoding/json does",
			input: []byte(`{"userIdentity":{"type":"IAMUser","arn":"first"},"userIdentity":{"type":"AssumedRole"}}`),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.UserIdentity != (cloudtrail.UserIdentity{Type: "AssumedRole"}) {
					t.Errorf("UserIdentity = %+v", r.UserIdentity)
				}
			},
		},
		{
			name:  "an escaped key is matched after unescaping",
			input: []byte(`{"event\u004eame":"ListBuckets"}`),
			check: func(t *testing.T, r cloudtrail.Record) {
				if r.EventName != "ListBuckets" {
					t.Errorf("EventName = %q", r.EventName)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := cloudtrail.ParseRecord(tt.input)
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			if &r.JSON()[0] != &tt.input[0] {
				t.Errorf("Raw does not alias the input")
			}
			tt.check(t, r)
		})
	}
}

func TestParseRecordRejectsMalformedInput(t *testing.T) {
	valid := cloudtrailtest.StolenFromForeignIP.JSON()
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"an empty input is a syntax error", ``, cloudtrail.ErrSyntax},
		{"a truncated record is a syntax error", string(valid[:len(valid)/2]), cloudtrail.ErrSyntax},
		{"a record missing its closing brace is a syntax error", string(valid[:len(valid)-1]), cloudtrail.ErrSyntax},
		{"garbage is a syntax error", `not json at all`, cloudtrail.ErrSyntax},
		{"trailing data is a syntax error", string(valid) + `{}`, cloudtrail.ErrSyntax},
		{"a JSON array is a type error", `[1,2]`, cloudtrail.ErrType},
		{"a JSON string is a type error", `"record"`, cloudtrail.ErrType},
		{"a numeric principalId is a type error", `{"userIdentity":{"principalId":42}}`, cloudtrail.ErrType},
		{"a string userIdentity is a type error", `{"userIdentity":"AssumedRole"}`, cloudtrail.ErrType},
		{"an array sessionIssuer is a type error", `{"userIdentity":{"sessionContext":{"sessionIssuer":[]}}}`, cloudtrail.ErrType},
		{"a boolean sourceIPAddress is a type error", `{"sourceIPAddress":true}`, cloudtrail.ErrType},
		{"a control character in a string is a syntax error", "{\"eventName\":\"a\x00b\"}", cloudtrail.ErrSyntax},
		{"an invalid escape is a syntax error", `{"eventName":"a\qb"}`, cloudtrail.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cloudtrail.ParseRecord([]byte(tt.input))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseRecord error = %v, want %v", err, tt.want)
			}
			if err.Error()[:len("cloudtrail: ")] != "cloudtrail: " {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// recordFromMap builds a Record from encoding/json's generic decoding,
// matching keys exactly as ParseRecord does.
func recordFromMap(m map[string]any) cloudtrail.Record {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	obj := func(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }
	ui, sc := obj(m, "userIdentity"), obj(obj(m, "userIdentity"), "sessionContext")
	si := obj(sc, "sessionIssuer")
	return cloudtrail.Record{
		EventVersion: str(m, "eventVersion"), EventID: str(m, "eventID"), EventTime: str(m, "eventTime"),
		EventSource: str(m, "eventSource"), EventName: str(m, "eventName"), EventType: str(m, "eventType"),
		AWSRegion: str(m, "awsRegion"), SourceIPAddress: str(m, "sourceIPAddress"), UserAgent: str(m, "userAgent"),
		VPCEndpointID: str(m, "vpcEndpointId"), VPCEndpointAccountID: str(m, "vpcEndpointAccountId"),
		RecipientAccountID: str(m, "recipientAccountId"), ErrorCode: str(m, "errorCode"),
		UserIdentity: cloudtrail.UserIdentity{
			Type: str(ui, "type"), PrincipalID: str(ui, "principalId"), ARN: str(ui, "arn"),
			AccountID: str(ui, "accountId"), AccessKeyID: str(ui, "accessKeyId"), UserName: str(ui, "userName"),
			InvokedBy: str(ui, "invokedBy"),
			SessionContext: cloudtrail.SessionContext{
				EC2RoleDelivery: str(sc, "ec2RoleDelivery"), SourceIdentity: str(sc, "sourceIdentity"),
				SessionIssuer: cloudtrail.SessionIssuer{
					Type: str(si, "type"), PrincipalID: str(si, "principalId"), ARN: str(si, "arn"),
					AccountID: str(si, "accountId"), UserName: str(si, "userName"),
				},
			},
		},
	}
}

// checkAgainstEncodingJSON verifies that ParseRecord and encoding/json agree
// on raw: both accept it or both reject it (ParseRecord additionally
// rejects known fields of the wrong type), and accepted records have the
// same field values.
func checkAgainstEncodingJSON(t *testing.T, raw []byte) {
	t.Helper()
	got, err := cloudtrail.ParseRecord(raw)
	var m map[string]any
	jerr := json.Unmarshal(raw, &m)
	switch {
	case err == nil && jerr != nil:
		t.Fatalf("ParseRecord accepted what encoding/json rejects (%v): %q", jerr, raw)
	case err != nil && jerr == nil && !errors.Is(err, cloudtrail.ErrType):
		t.Fatalf("ParseRecord rejected valid JSON with a non-type error %v: %q", err, raw)
	case err != nil && !errors.Is(err, cloudtrail.ErrType) && !errors.Is(err, cloudtrail.ErrSyntax):
		t.Fatalf("ParseRecord error %v wraps neither ErrSyntax nor ErrType", err)
	case err != nil || !utf8.Valid(raw):
		return // encoding/json replaces invalid UTF-8; nothing more to compare
	}
	want := recordFromMap(m)
	got.SetJSON(nil)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseRecord = %+v\nencoding/json = %+v\ninput %q", got, want, raw)
	}
}

func TestParseRecordAgreesWithEncodingJSONOnFixtures(t *testing.T) {
	for _, s := range cloudtrailtest.Scenarios {
		t.Run(string(s)+" decodes as encoding/json decodes it", func(t *testing.T) {
			checkAgainstEncodingJSON(t, s.JSON())
		})
	}
	for _, f := range []string{"instance_session_imdsv1_v1.08.json", "instance_session_vpce_v1.10.json", "iam_user_v1.09.json",
		"org_trail_member_instance_v1.09.json", "cross_account_kms_resource_owner_v1.09.json", "global_iam_from_instance_v1.09.json"} {
		t.Run("testdata "+f+" decodes as encoding/json decodes it", func(t *testing.T) {
			checkAgainstEncodingJSON(t, readFile(t, f))
		})
	}
}

func TestMayBeInstanceSession(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  bool
	}{
		{"an instance session passes", cloudtrailtest.InstanceFromPublicIP.JSON(), true},
		{"an old 8-digit instance session passes", cloudtrailtest.InstanceIMDSv1Old.JSON(), true},
		{"an IAM user call is rejected", cloudtrailtest.IAMUserCall.JSON(), false},
		{"a Lambda role call is rejected", cloudtrailtest.LambdaRoleCall.JSON(), false},
		{"the detector's own Lambda call is rejected", cloudtrailtest.DetectorOwnCall.JSON(), false},
		{"a session with ec2RoleDelivery but an odd principal passes", []byte(`{"userIdentity":{"principalId":"AROA:x","sessionContext":{"ec2RoleDelivery":"2.0"}}}`), true},
		{"a principal spelled with a unicode escape passes", []byte(`{"userIdentity":{"principalId":"AROA\u003ai-0123456789abcdef0"}}`), true},
		{"an escaped CloudWatch Logs message of an instance session passes", []byte(`{\"userIdentity\":{\"principalId\":\"AROA:i-0123456789abcdef0\"}}`), true},
		{"an empty input is rejected", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cloudtrail.MayBeInstanceSession(tt.input); got != tt.want {
				t.Errorf("MayBeInstanceSession = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRecordTime(t *testing.T) {
	t.Run("a CloudTrail timestamp parses", func(t *testing.T) {
		r := cloudtrail.Record{EventTime: "2024-05-14T10:00:00Z"}
		got, err := r.Time()
		if err != nil || got.Unix() != 1715680800 {
			t.Errorf("Time = %v, %v", got, err)
		}
	})
	t.Run("a garbage timestamp is an error", func(t *testing.T) {
		r := cloudtrail.Record{EventTime: "yesterday"}
		if _, err := r.Time(); err == nil {
			t.Error("Time accepted garbage")
		}
	})
}
