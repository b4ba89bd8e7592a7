package main

// Unit tests of the pieces of package main, in process. main_test.go tests
// the shipped binary as a whole.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    shape
		wantErr bool
	}{
		{"CloudWatch Logs", string(ctt.CWLEvent(ctt.CWLPayload(ctt.IAMUserCall.JSON()))), shapeCWL, false},
		{"CloudWatch Logs, awslogs of the wrong type", `{"awslogs":"x"}`, shapeCWL, false},
		{"EventBridge", string(ctt.EventBridge(ctt.IAMUserCall.JSON())), shapeEventBridge, false},
		{"EventBridge, other detail type", `{"detail-type":"EC2 Instance State-change Notification","detail":{}}`, shapeEventBridge, false},
		{"Kinesis", string(ctt.KinesisEvent(ctt.CWLPayload())), shapeKinesis, false},
		{"Kinesis by eventSource", `{"Records":[{"eventSource":"aws:kinesis"}]}`, shapeKinesis, false},
		{"Kinesis, one odd record", `{"Records":[1,{"kinesis":{}}]}`, shapeKinesis, false},
		{"Kinesis, empty", `{"Records":[]}`, shapeKinesis, false},
		{"S3 records", `{"Records":[{"eventSource":"aws:s3","s3":{}}]}`, shapeUnknown, true},
		{"empty object", `{}`, shapeUnknown, true},
		{"array", `[]`, shapeUnknown, true},
		{"string", `"awslogs"`, shapeUnknown, true},
		{"not JSON", `awslogs`, shapeUnknown, true},
		{"truncated", `{"awslogs":{"data":"`, shapeUnknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sniff([]byte(tt.payload))
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("sniff = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLoadSettings(t *testing.T) {
	valid := map[string]string{
		EnvTopicARN: "arn:aws:sns:eu-west-1:111122223333:alerts",
		EnvDLQURL:   "https://sqs.eu-west-1.amazonaws.com/111122223333/dlq",
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    settings
		wantErr string
	}{
		{name: "defaults", want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute}},
		{name: "as the construct sets it", env: map[string]string{
			EnvDedupeWindow: "1h0m0s", EnvInventoryTTL: "10m0s", EnvSelfRoleARN: "arn:aws:iam::111122223333:role/detector",
		}, want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, SelfRoleARN: "arn:aws:iam::111122223333:role/detector"}},
		{name: "dedupe off", env: map[string]string{EnvDedupeWindow: "0s"}, want: settings{DedupeWindow: -1, InventoryTTL: 10 * time.Minute}},
		{name: "lockdown", env: map[string]string{EnvLockdown: "true"}, want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Lockdown: true}},
		{name: "lockdown off", env: map[string]string{EnvLockdown: "false"}, want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute}},
		{name: "no topic", env: map[string]string{EnvTopicARN: ""}, wantErr: EnvTopicARN},
		{name: "topic not SNS", env: map[string]string{EnvTopicARN: "arn:aws:sqs:eu-west-1:1:q"}, wantErr: EnvTopicARN},
		{name: "no queue", env: map[string]string{EnvDLQURL: ""}, wantErr: EnvDLQURL},
		{name: "queue not a URL", env: map[string]string{EnvDLQURL: "dlq"}, wantErr: EnvDLQURL},
		{name: "bad window", env: map[string]string{EnvDedupeWindow: "1 hour"}, wantErr: EnvDedupeWindow},
		{name: "negative window", env: map[string]string{EnvDedupeWindow: "-1h"}, wantErr: EnvDedupeWindow},
		{name: "zero TTL", env: map[string]string{EnvInventoryTTL: "0s"}, wantErr: EnvInventoryTTL},
		{name: "bad TTL", env: map[string]string{EnvInventoryTTL: "soon"}, wantErr: EnvInventoryTTL},
		{name: "bad role", env: map[string]string{EnvSelfRoleARN: "detector"}, wantErr: EnvSelfRoleARN},
		{name: "bad lockdown", env: map[string]string{EnvLockdown: "True please"}, wantErr: EnvLockdown},
		{name: "the function's region", env: map[string]string{EnvRegion: "us-east-1"},
			want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Region: "us-east-1"}},
		{name: "regions searched", env: map[string]string{EnvRegions: " eu-west-1, us-gov-west-1,,eu-west-1,ap-southeast-4 "},
			want: settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Regions: []string{"eu-west-1", "us-gov-west-1", "ap-southeast-4"}}},
		{name: "a region that is not one", env: map[string]string{EnvRegions: "eu-west-1,Frankfurt"}, wantErr: EnvRegions},
		{name: "a region list without a region", env: map[string]string{EnvRegions: " , "}, wantErr: EnvRegions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range valid {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			got, err := loadSettings(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.TopicARN, tt.want.DLQURL = valid[EnvTopicARN], valid[EnvDLQURL]
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestKinesisResponse(t *testing.T) {
	alert := func(seq string) detect.FailedAlert {
		return detect.FailedAlert{Alert: detect.Alert{SequenceNumber: seq}}
	}
	undecided := func(seq string) detect.Undecided {
		return detect.Undecided{Record: &cloudtrail.Record{SequenceNumber: seq}}
	}
	tests := []struct {
		name      string
		alerts    []detect.FailedAlert
		undecided []detect.Undecided
		want      []string
		wantErr   bool
	}{
		{name: "nothing to retry", want: nil},
		{name: "sorted numerically, deduplicated",
			alerts:    []detect.FailedAlert{alert("100"), alert("20"), alert("100")},
			undecided: []detect.Undecided{undecided("3"), undecided("20")},
			want:      []string{"3", "20", "100"}},
		{name: "a record without sequence number fails the batch", alerts: []detect.FailedAlert{alert("")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := kinesisResponse(tt.alerts, tt.undecided)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			var got []string
			for _, f := range resp.BatchItemFailures {
				got = append(got, f.ItemIdentifier)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("failures %v, want %v", got, tt.want)
			}
			if b, _ := json.Marshal(resp); tt.want == nil && string(b) != `{"batchItemFailures":[]}` {
				t.Errorf("empty response %s", b)
			}
		})
	}
}

func TestPermanentSNSError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "Throttled"}, false},
		{&smithy.GenericAPIError{Code: "InternalError"}, false},
		{&smithy.GenericAPIError{Code: "KMSThrottling"}, false},
		{&smithy.GenericAPIError{Code: "AuthorizationError"}, true},
		{&smithy.GenericAPIError{Code: "InvalidParameter"}, true},
		{&smithy.GenericAPIError{Code: "NotFound"}, true},
		{&smithy.GenericAPIError{Code: "KMSDisabled"}, true},
		{fmt.Errorf("wrapped: %w", &smithy.GenericAPIError{Code: "NotFound"}), true},
		{errors.New("connection reset"), false},
	}
	for _, tt := range tests {
		if got := permanentSNSError(tt.err); got != tt.want {
			t.Errorf("permanentSNSError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// testAlert returns an alert about rec.
func testAlert(t testing.TB, rec []byte) detect.Alert {
	t.Helper()
	r, err := cloudtrail.ParseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := detect.IsInstanceSession(&r)
	inst := detect.Instance{ID: id, PublicIPs: []netip.Addr{netip.MustParseAddr(ctt.PublicIP)}}
	return detect.NewAlert(&r, id, inst, detect.Decide(&r, inst, true))
}

func TestDeadLetterBody(t *testing.T) {
	big := ctt.StolenFromForeignIP.Build()
	big.RequestParameters = `{"blob":"` + strings.Repeat("A", 300<<10) + `"}`
	hugeAgent := ctt.StolenFromForeignIP.Build()
	hugeAgent.UserAgent = strings.Repeat("B", 300<<10)
	tests := []struct {
		name          string
		rec           []byte
		err           error
		wantTruncated bool
		wantSummary   bool
	}{
		{name: "small", rec: ctt.StolenFromForeignIP.JSON(), err: errors.New("sns: throttled")},
		{name: "huge record", rec: big.JSON(), err: errors.New("sns: too big"), wantTruncated: true},
		{name: "huge alert fields", rec: hugeAgent.JSON(), err: errors.New(strings.Repeat("e", 10<<10)), wantSummary: true},
		{name: "no error", rec: ctt.StolenFromForeignIP.JSON()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAlert(t, tt.rec)
			body, err := deadLetterBody(detect.FailedAlert{Alert: a, Attempts: 4, Err: tt.err}, "arn:aws:sns:eu-west-1:1:t", "req-1", time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(body) > sqsMaxMessage {
				t.Fatalf("body is %d bytes", len(body))
			}
			var d DeadLetter
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatal(err)
			}
			var got struct {
				UniqID          string          `json:"uniq_id"`
				Truncated       bool            `json:"truncated"`
				CloudTrailEvent json.RawMessage `json:"CloudTrailEvent"`
			}
			if err := json.Unmarshal(d.Alert, &got); err != nil {
				t.Fatal(err)
			}
			if d.Kind != "alert" || d.Attempts != 4 || d.RequestID != "req-1" || d.Error == "" || len(d.Error) > maxErrorText+4 || got.UniqID != a.UniqID {
				t.Errorf("dead letter %+v (alert uniq_id %q)", d, got.UniqID)
			}
			if truncated := bytes.Contains(got.CloudTrailEvent, []byte(`"truncated":true`)); truncated != tt.wantTruncated {
				t.Errorf("CloudTrailEvent truncated = %v, want %v", truncated, tt.wantTruncated)
			}
			if got.Truncated != tt.wantSummary {
				t.Errorf("alert summarised = %v, want %v", got.Truncated, tt.wantSummary)
			}
		})
	}
}

func TestSafeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{"{\"a\":\"x\uFFFEy\uFFFF\"}", `{"a":"x\ufffey\uffff"}`},
	}
	for _, tt := range tests {
		got := safeText([]byte(tt.in))
		if string(got) != tt.want {
			t.Errorf("safeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		var v any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Errorf("safeText(%q) is not JSON: %v", tt.in, err)
		}
	}
}

func TestEMFLine(t *testing.T) {
	line := emfLine(metrics{Source: "kinesis", EventsSeen: 3, Alerts: 1, DurationMs: 1.5}, "req", time.UnixMilli(1715680800000))
	var r map[string]any
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	d := r["_aws"].(map[string]any)
	cw := d["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if d["Timestamp"] != float64(1715680800000) || cw["Namespace"] != "Defenders/Detector" || fmt.Sprint(cw["Dimensions"]) != "[[]]" {
		t.Errorf("EMF directive %v", d)
	}
	for _, m := range cw["Metrics"].([]any) {
		name := m.(map[string]any)["Name"].(string)
		if _, ok := r[name]; !ok {
			t.Errorf("metric %s declared but absent", name)
		}
	}
	if r["EventsSeen"] != float64(3) || r["Alerts"] != float64(1) || r["Source"] != "kinesis" || !bytes.HasSuffix(line, []byte("\n")) {
		t.Errorf("EMF record %s", line)
	}
}

// fakeSNS and fakeSQS script the AWS APIs for in-process handler tests.
type fakeSNS struct {
	mu    sync.Mutex
	fails int // fail this many calls first
	calls int
	in    []*sns.PublishInput
}

func (f *fakeSNS) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return nil, &smithy.GenericAPIError{Code: "Throttled", Message: "Rate exceeded"}
	}
	f.in = append(f.in, in)
	return &sns.PublishOutput{}, nil
}

type fakeSQS struct {
	mu  sync.Mutex
	err error
	in  []*sqs.SendMessageInput
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.in = append(f.in, in)
	return &sqs.SendMessageOutput{}, nil
}

// TestInvokeDeadline checks that an invocation close to its deadline still
// dead-letters what it could not publish instead of timing out.
func TestInvokeDeadline(t *testing.T) {
	tests := []struct {
		name      string
		snsFails  int
		sqsErr    error
		timeout   time.Duration
		wantSNS   int // alerts published
		wantSQS   int // alerts dead-lettered
		wantError string
	}{
		{name: "published after retries", snsFails: 2, timeout: 30 * time.Second, wantSNS: 3},
		{name: "deadline cuts the retries, alerts dead-lettered", snsFails: 1 << 30, timeout: 2 * time.Second, wantSQS: 3},
		{name: "nothing delivered", snsFails: 1 << 30, sqsErr: errors.New("sqs down"), timeout: 2 * time.Second, wantError: ErrTypeUndelivered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snsAPI, sqsAPI := &fakeSNS{fails: tt.snsFails}, &fakeSQS{err: tt.sqsErr}
			var logs bytes.Buffer
			h := &handler{
				proc:  detect.NewProcessor(detect.StaticInventory{ctt.InstanceID: {ID: ctt.InstanceID}}, detect.Config{}),
				pub:   &snsPublisher{api: snsAPI, topicARN: "arn:aws:sns:eu-west-1:1:t"},
				dlq:   &deadLetterQueue{api: sqsAPI, url: "https://sqs.example/q", topicARN: "arn:aws:sns:eu-west-1:1:t"},
				retry: detect.RetryPolicy{MaxAttempts: 1000, BaseDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
				log:   slog.New(slog.NewJSONHandler(&logs, nil)),
				out:   &logs,
			}
			event, _ := stolenBatch(3)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			began := time.Now()
			_, err := h.Invoke(ctx, event)
			if time.Since(began) > tt.timeout {
				t.Errorf("the handler ran past its deadline (%v)", time.Since(began))
			}
			if tt.wantError == "" && err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if tt.wantError != "" {
				var ie messages.InvokeResponse_Error
				if !errors.As(err, &ie) || ie.Type != tt.wantError {
					t.Fatalf("Invoke error %v, want type %s", err, tt.wantError)
				}
			}
			if len(snsAPI.in) != tt.wantSNS {
				t.Errorf("%d alerts published, want %d", len(snsAPI.in), tt.wantSNS)
			}
			if len(sqsAPI.in) != tt.wantSQS {
				t.Errorf("%d dead letters, want %d", len(sqsAPI.in), tt.wantSQS)
			}
		})
	}
}
