package cloudtrail_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

type ctt = cloudtrailtest.Scenario

// mixedPayload is a CloudWatch Logs payload with good and bad log events:
// 3 instance sessions, 3 other principals and 6 malformed events.
func mixedPayload() []byte {
	good := func(s ctt) string { return string(s.JSON()) }
	stolen := good(cloudtrailtest.StolenFromForeignIP)
	evs := []cloudtrailtest.LogEvent{
		{ID: "e01", Message: good(cloudtrailtest.InstanceFromPublicIP)},
		{ID: "e02", Message: good(cloudtrailtest.IAMUserCall)},
		{ID: "e03", Message: stolen[:len(stolen)/2]}, // truncated instance record
		{ID: "e04", Message: good(cloudtrailtest.LambdaRoleCall)},
		{ID: "e05", Message: `{"userIdentity":{"principalId":12345},"note":":i-"}`}, // wrong type
		{ID: "e06", Message: stolen},
		{ID: "e07", Message: `garbage :i- garbage`},
		{ID: "e08", Message: good(cloudtrailtest.DetectorOwnCall)},
		{ID: "e09", Message: good(cloudtrailtest.UnknownInstanceCall)},
	}
	p := string(cloudtrailtest.CWLPayloadEvents("DATA_MESSAGE", evs...))
	// Append events encoding/json would never produce: a numeric message, a
	// missing message and a log event that is not an object.
	p = strings.TrimSuffix(p, `]}`) + `,{"id":"e10","timestamp":1,"message":42},{"id":"e11","timestamp":2},"e12"]}`
	return []byte(p)
}

func TestDecodeCWLPayloadWithMixedGoodAndBadEvents(t *testing.T) {
	var d cloudtrail.Decoder
	var b cloudtrail.Batch
	if err := d.DecodeCWLPayload(mixedPayload(), &b); err != nil {
		t.Fatalf("DecodeCWLPayload: %v", err)
	}
	t.Run("every log event is counted", func(t *testing.T) {
		if b.Events != 12 || b.Payloads != 1 {
			t.Errorf("Events = %d, Payloads = %d, want 12, 1", b.Events, b.Payloads)
		}
	})
	t.Run("non-instance records are filtered without decoding", func(t *testing.T) {
		if b.Filtered != 3 {
			t.Errorf("Filtered = %d, want 3", b.Filtered)
		}
	})
	t.Run("the instance sessions are decoded in order with their log event ids", func(t *testing.T) {
		var ids []string
		for _, r := range b.Records {
			ids = append(ids, r.DeliveryID+"/"+r.UserIdentity.PrincipalID)
			if r.Source != cloudtrail.SourceCWL {
				t.Errorf("record %s has Source %v", r.DeliveryID, r.Source)
			}
		}
		want := []string{
			"e01/" + cloudtrailtest.RoleID + ":" + cloudtrailtest.InstanceID,
			"e06/" + cloudtrailtest.RoleID + ":" + cloudtrailtest.InstanceID,
			"e09/" + cloudtrailtest.RoleID + ":" + cloudtrailtest.UnknownInstance,
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("records = %v, want %v", ids, want)
		}
	})
	t.Run("each malformed event is reported with its id", func(t *testing.T) {
		var ids []string
		for _, e := range b.Errors {
			ids = append(ids, e.ID)
			if e.Err == nil || !strings.HasPrefix(e.Error(), "cloudtrail: cloudwatch-logs item") {
				t.Errorf("item error %q is not descriptive", e)
			}
		}
		if b.Malformed != 6 || fmt.Sprint(ids) != "[e03 e05 e07 e10 e11 ]" {
			t.Errorf("Malformed = %d, errors for %v", b.Malformed, ids)
		}
	})
	t.Run("the raw record is the unescaped message", func(t *testing.T) {
		if !bytes.Equal(b.Records[1].JSON(), cloudtrailtest.StolenFromForeignIP.JSON()) {
			t.Errorf("Raw = %s", b.Records[1].JSON())
		}
	})
}

func TestDecodeCWLPayloadEdgeCases(t *testing.T) {
	inst := cloudtrailtest.InstanceFromPublicIP.JSON()
	tests := []struct {
		name                          string
		payload                       []byte
		records, events, ignored, bad int
		wantErr                       bool
	}{
		{name: "a control message is ignored", payload: cloudtrailtest.ControlPayload(), ignored: 1},
		{name: "a control message listing its type last is ignored",
			payload: []byte(`{"logEvents":[{"id":"1","message":` + strconvQuote(string(inst)) + `}],"messageType":"CONTROL_MESSAGE"}`), ignored: 1},
		{name: "a payload with zero events is fine", payload: cloudtrailtest.CWLPayloadEvents("DATA_MESSAGE")},
		{name: "a payload with null events is fine", payload: []byte(`{"messageType":"DATA_MESSAGE","logEvents":null}`)},
		{name: "a payload without events is fine", payload: []byte(`{"messageType":"DATA_MESSAGE"}`)},
		{name: "a payload without a message type is treated as data", payload: cloudtrailtest.CWLPayloadEvents("", cloudtrailtest.LogEvent{ID: "1", Message: string(inst)}), records: 1, events: 1},
		{name: "an unknown message type is an error", payload: cloudtrailtest.CWLPayloadEvents("NEW_MESSAGE"), wantErr: true},
		{name: "an empty payload is an error", payload: nil, wantErr: true},
		{name: "a JSON array payload is an error", payload: []byte(`[]`), wantErr: true},
		{name: "logEvents that is not an array is an error", payload: []byte(`{"logEvents":{}}`), wantErr: true},
		{name: "a truncated envelope keeps the events before the damage and is an error",
			payload: func() []byte {
				p := cloudtrailtest.CWLPayload(inst, inst, inst)
				return p[:len(p)-len(inst)/2]
			}(), records: 2, events: 2, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b cloudtrail.Batch
			err := new(cloudtrail.Decoder).DecodeCWLPayload(tt.payload, &b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "cloudtrail: ") {
				t.Errorf("error %q lacks context", err)
			}
			if len(b.Records) != tt.records || b.Events != tt.events || b.Ignored != tt.ignored || b.Malformed != tt.bad {
				t.Errorf("records %d events %d ignored %d malformed %d, want %d %d %d %d",
					len(b.Records), b.Events, b.Ignored, b.Malformed, tt.records, tt.events, tt.ignored, tt.bad)
			}
		})
	}
}

func TestDecodeCWLEvent(t *testing.T) {
	payload := cloudtrailtest.CWLPayload(cloudtrailtest.StolenFromForeignIP.JSON(), cloudtrailtest.IAMUserCall.JSON())
	data := cloudtrailtest.CWLData(payload)
	huge := bytes.Repeat([]byte(" "), 2<<20)
	tests := []struct {
		name    string
		event   []byte
		limit   int
		records int
		wantErr string
	}{
		{name: "a Lambda CloudWatch Logs event decodes", event: cloudtrailtest.CWLEvent(payload), records: 1},
		{name: "escaped slashes in the base64 data are tolerated",
			event: []byte(`{"awslogs":{"data":"` + strings.ReplaceAll(string(data), "/", `\/`) + `"}}`), records: 1},
		{name: "unpadded base64 is tolerated",
			event: []byte(`{"awslogs":{"data":"` + strings.TrimRight(string(data), "=") + `"}}`), records: 1},
		{name: "bad base64 is an error", event: []byte(`{"awslogs":{"data":"!!!not base64!!!"}}`), wantErr: "base64"},
		{name: "base64 of something that is not gzip is an error",
			event: []byte(`{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString([]byte("plain text")) + `"}}`), wantErr: "gunzip"},
		{name: "truncated gzip is an error",
			event: []byte(`{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString(cloudtrailtest.Gzip(payload)[:100]) + `"}}`), wantErr: "gunzip"},
		{name: "a payload over the size limit is an error naming the limit",
			event: cloudtrailtest.CWLEvent(append(append([]byte(nil), payload[:len(payload)-1]...), append(huge, '}')...)),
			limit: 1 << 20, wantErr: "1048576-byte limit"},
		{name: "a payload under the default limit decodes",
			event: cloudtrailtest.CWLEvent(append(append([]byte(nil), payload[:len(payload)-1]...), append(huge, '}')...)), records: 1},
		{name: "a missing awslogs key is an error", event: []byte(`{"records":[]}`), wantErr: "awslogs.data"},
		{name: "a numeric data field is an error", event: []byte(`{"awslogs":{"data":7}}`), wantErr: "want string"},
		{name: "a truncated event is an error", event: []byte(`{"awslogs":{"data":"H4sI`), wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b cloudtrail.Batch
			err := (&cloudtrail.Decoder{MaxPayloadBytes: tt.limit}).DecodeCWLEvent(tt.event, &b)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if len(b.Records) != tt.records {
				t.Errorf("got %d records, want %d", len(b.Records), tt.records)
			}
			if b.Payloads != 1 {
				t.Errorf("Payloads = %d, want 1", b.Payloads)
			}
		})
	}
	t.Run("the size-limit error wraps ErrPayloadTooLarge", func(t *testing.T) {
		big := cloudtrailtest.Gzip(bytes.Repeat([]byte("x"), 1<<20))
		err := (&cloudtrail.Decoder{MaxPayloadBytes: 1000}).DecodeCWLCompressed(big, new(cloudtrail.Batch))
		if !errors.Is(err, cloudtrail.ErrPayloadTooLarge) {
			t.Errorf("error = %v", err)
		}
	})
}

func TestDecodeKinesisEvent(t *testing.T) {
	good := cloudtrailtest.CWLPayload(cloudtrailtest.StolenFromForeignIP.JSON(), cloudtrailtest.LambdaRoleCall.JSON())
	event := cloudtrailtest.KinesisEvent(good, []byte("this is not JSON"), cloudtrailtest.ControlPayload(), good)
	// Corrupt the gzip data of one more record by appending it raw.
	event = append(bytes.TrimSuffix(event, []byte(`]}`)), `,{"kinesis":{"sequenceNumber":"999","data":"AAAA"},"eventID":"shardId-000000000000:999"}]}`...)

	var b cloudtrail.Batch
	if err := new(cloudtrail.Decoder).DecodeKinesisEvent(event, &b); err != nil {
		t.Fatalf("DecodeKinesisEvent: %v", err)
	}
	t.Run("records from good Kinesis records carry their sequence numbers", func(t *testing.T) {
		if len(b.Records) != 2 {
			t.Fatalf("got %d records, want 2", len(b.Records))
		}
		for i, want := range []string{cloudtrailtest.KinesisSequence(0), cloudtrailtest.KinesisSequence(3)} {
			if r := b.Records[i]; r.SequenceNumber != want || r.Source != cloudtrail.SourceKinesis {
				t.Errorf("record %d: sequence %q source %v, want %q kinesis", i, r.SequenceNumber, r.Source, want)
			}
		}
	})
	t.Run("bad Kinesis records become item errors carrying their sequence numbers", func(t *testing.T) {
		if b.Malformed != 2 || len(b.Errors) != 2 {
			t.Fatalf("Malformed = %d, errors %v", b.Malformed, b.Errors)
		}
		if b.Errors[0].SequenceNumber != cloudtrailtest.KinesisSequence(1) || b.Errors[1].SequenceNumber != "999" {
			t.Errorf("errors = %v", b.Errors)
		}
		if !strings.Contains(b.Errors[0].Error(), "sequence number "+cloudtrailtest.KinesisSequence(1)) {
			t.Errorf("error text %q lacks the sequence number", b.Errors[0])
		}
	})
	t.Run("the control message is ignored and every payload counted", func(t *testing.T) {
		if b.Ignored != 1 || b.Payloads != 5 || b.Events != 4 || b.Filtered != 2 {
			t.Errorf("ignored %d payloads %d events %d filtered %d", b.Ignored, b.Payloads, b.Events, b.Filtered)
		}
	})
	t.Run("an event that is not JSON is an error", func(t *testing.T) {
		if err := new(cloudtrail.Decoder).DecodeKinesisEvent([]byte(`{"Records":[`), new(cloudtrail.Batch)); !errors.Is(err, cloudtrail.ErrSyntax) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("an event without records is empty", func(t *testing.T) {
		var b cloudtrail.Batch
		if err := new(cloudtrail.Decoder).DecodeKinesisEvent([]byte(`{"Records":[]}`), &b); err != nil || b.Payloads != 0 {
			t.Errorf("error = %v, payloads %d", err, b.Payloads)
		}
	})
	t.Run("a record element of the wrong type is an item error", func(t *testing.T) {
		var b cloudtrail.Batch
		err := new(cloudtrail.Decoder).DecodeKinesisEvent([]byte(`{"Records":[7,{"kinesis":{"data":5}},{"kinesis":"x"},{}]}`), &b)
		if err != nil || b.Malformed != 4 {
			t.Errorf("error = %v, malformed %d (%v)", err, b.Malformed, b.Errors)
		}
	})
}

func TestDecodeKinesisData(t *testing.T) {
	t.Run("already decoded Kinesis data decodes and is tagged", func(t *testing.T) {
		var b cloudtrail.Batch
		gz := cloudtrailtest.Gzip(cloudtrailtest.CWLPayload(cloudtrailtest.InstanceViaNAT.JSON()))
		if err := new(cloudtrail.Decoder).DecodeKinesisData("42", gz, &b); err != nil || len(b.Records) != 1 || b.Records[0].SequenceNumber != "42" {
			t.Errorf("error = %v, records %+v", err, b.Records)
		}
	})
	t.Run("data that is not gzip is an error", func(t *testing.T) {
		if err := new(cloudtrail.Decoder).DecodeKinesisData("42", []byte("{}"), new(cloudtrail.Batch)); err == nil {
			t.Error("no error")
		}
	})
}

func TestDecodeEventBridge(t *testing.T) {
	file := readFile(t, "eventbridge_api_call.json")
	tests := []struct {
		name                            string
		event                           []byte
		records, filtered, ignored, bad int
		wantErr                         bool
	}{
		{name: "an API call event from testdata decodes", event: file, records: 1},
		{name: "a built API call event decodes", event: cloudtrailtest.EventBridge(cloudtrailtest.StolenFromForeignIP.JSON()), records: 1},
		{name: "a console sign-in event is a CloudTrail record too", event: cloudtrailtest.EventBridgeType("AWS Console Sign In via CloudTrail", cloudtrailtest.IAMUserCall.JSON()), filtered: 1},
		{name: "a non-instance call is filtered", event: cloudtrailtest.EventBridge(cloudtrailtest.LambdaRoleCall.JSON()), filtered: 1},
		{name: "an event of another detail type is ignored", event: cloudtrailtest.EventBridgeType("EC2 Instance State-change Notification", []byte(`{"instance-id":"i-0a1b2c3d4e5f60718","state":"running"}`)), ignored: 1},
		{name: "an event without detail is an item error", event: []byte(`{"id":"x","detail-type":"AWS API Call via CloudTrail"}`), bad: 1},
		{name: "an event with a string detail is an item error", event: []byte(`{"id":"x","detail":"{}"}`), bad: 1},
		{name: "a detail with a wrong-typed field is an item error", event: []byte(`{"id":"x","detail":{"userIdentity":{"principalId":[":i-"]}}}`), bad: 1},
		{name: "a truncated event is an error", event: file[:len(file)-20], wantErr: true},
		{name: "an empty event is an error", event: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b cloudtrail.Batch
			err := new(cloudtrail.Decoder).DecodeEventBridge(tt.event, &b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if len(b.Records) != tt.records || b.Filtered != tt.filtered || b.Ignored != tt.ignored || b.Malformed != tt.bad {
				t.Errorf("records %d filtered %d ignored %d malformed %d, want %d %d %d %d (%v)",
					len(b.Records), b.Filtered, b.Ignored, b.Malformed, tt.records, tt.filtered, tt.ignored, tt.bad, b.Errors)
			}
		})
	}
	t.Run("the record aliases the event's detail without copying", func(t *testing.T) {
		var b cloudtrail.Batch
		if err := new(cloudtrail.Decoder).DecodeEventBridge(file, &b); err != nil {
			t.Fatal(err)
		}
		r := b.Records[0]
		start := bytes.Index(file, []byte(`{"eventVersion"`))
		if &r.JSON()[0] != &file[start] || r.JSON()[len(r.JSON())-1] != '}' {
			t.Errorf("Raw does not alias the detail")
		}
		if r.DeliveryID != "6f1d2b8c-2a74-4f0b-9c1e-3d7f2a9b5e10" || r.ErrorCode != "AccessDenied" || r.AWSRegion != "us-east-1" {
			t.Errorf("record = %+v", r)
		}
	})
}

func TestHugeRecordsDecode(t *testing.T) {
	e := cloudtrailtest.StolenFromForeignIP.Build()
	e.RequestParameters = `{"policyDocument":"` + strings.Repeat("A", 3<<20) + `"}`
	huge := e.JSON()
	var b cloudtrail.Batch
	t.Run("a 3 MiB record inside a CloudWatch Logs payload decodes", func(t *testing.T) {
		if err := new(cloudtrail.Decoder).DecodeCWLEvent(cloudtrailtest.CWLEvent(cloudtrailtest.CWLPayload(huge)), &b); err != nil || len(b.Records) != 1 {
			t.Fatalf("error = %v, records %d", err, len(b.Records))
		}
		if len(b.Records[0].JSON()) != len(huge) {
			t.Errorf("Raw has %d bytes, want %d", len(b.Records[0].JSON()), len(huge))
		}
	})
	t.Run("the same payload fails under a 1 MiB limit", func(t *testing.T) {
		err := (&cloudtrail.Decoder{MaxPayloadBytes: 1 << 20}).DecodeCWLEvent(cloudtrailtest.CWLEvent(cloudtrailtest.CWLPayload(huge)), new(cloudtrail.Batch))
		if !errors.Is(err, cloudtrail.ErrPayloadTooLarge) {
			t.Errorf("error = %v", err)
		}
	})
}

func TestDecoderDecodeAllDisablesThePrefilter(t *testing.T) {
	var b cloudtrail.Batch
	d := cloudtrail.Decoder{DecodeAll: true}
	if err := d.DecodeCWLPayload(cloudtrailtest.CWLPayload(cloudtrailtest.IAMUserCall.JSON(), cloudtrailtest.LambdaRoleCall.JSON()), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 2 || b.Filtered != 0 {
		t.Errorf("records %d filtered %d, want 2 0", len(b.Records), b.Filtered)
	}
}

func TestBatchErrorsAreCapped(t *testing.T) {
	evs := make([]cloudtrailtest.LogEvent, cloudtrail.MaxItemErrors+50)
	for i := range evs {
		evs[i] = cloudtrailtest.LogEvent{ID: fmt.Sprint(i), Message: "broken :i-"}
	}
	var b cloudtrail.Batch
	if err := new(cloudtrail.Decoder).DecodeCWLPayload(cloudtrailtest.CWLPayloadEvents("DATA_MESSAGE", evs...), &b); err != nil {
		t.Fatal(err)
	}
	if b.Malformed != len(evs) || len(b.Errors) != cloudtrail.MaxItemErrors {
		t.Errorf("Malformed %d, %d errors kept", b.Malformed, len(b.Errors))
	}
	b.Reset()
	if b.Malformed != 0 || len(b.Errors) != 0 || len(b.Records) != 0 {
		t.Errorf("Reset left %+v", b)
	}
}

func TestSourceNames(t *testing.T) {
	for s, want := range map[cloudtrail.Source]string{
		cloudtrail.SourceUnknown: "unknown", cloudtrail.SourceEventBridge: "eventbridge",
		cloudtrail.SourceCWL: "cloudwatch-logs", cloudtrail.SourceKinesis: "kinesis",
	} {
		t.Run(want+" names itself", func(t *testing.T) {
			if s.String() != want {
				t.Errorf("String() = %q", s.String())
			}
		})
	}
}

func strconvQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
