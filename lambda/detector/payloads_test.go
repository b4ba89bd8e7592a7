package main

// Shipped-binary tests of payloads the detector cannot use, or only in
// part.

import (
	"encoding/json"
	"strings"
	"testing"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// TestOversizedRecord checks that an alert about a record too large for
// SNS or SQS is still delivered, with the record summarised.
func TestOversizedRecord(t *testing.T) {
	e := ctt.StolenFromForeignIP.Build()
	e.RequestParameters = `{"blob":"` + strings.Repeat("A", 254<<10) + `"}`
	event := ctt.CWLEvent(ctt.CWLPayload(e.JSON()))
	tests := []struct {
		name    string
		snsDown bool
	}{
		{"published", false},
		{"dead-lettered", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			if tt.snsDown {
				f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error"))
			}
			f.invokeOK(t, event)
			var alert []byte
			if tt.snsDown {
				d := f.deadLetters(t)
				if len(d) != 1 {
					t.Fatalf("%d dead letters, want 1", len(d))
				}
				alert = d[0].Alert
			} else {
				m := f.sns.Messages()
				if len(m) != 1 {
					t.Fatalf("%d SNS messages, want 1", len(m))
				}
				alert = []byte(m[0].Message)
			}
			var a struct {
				UniqID          string `json:"uniq_id"`
				CloudTrailEvent struct {
					Truncated bool   `json:"truncated"`
					EventID   string `json:"eventID"`
				} `json:"CloudTrailEvent"`
			}
			if err := json.Unmarshal(alert, &a); err != nil {
				t.Fatal(err)
			}
			if !a.CloudTrailEvent.Truncated || a.CloudTrailEvent.EventID != e.EventID || a.UniqID != ctt.InstanceID+"-"+ctt.AttackerIP {
				t.Errorf("alert %s", alert)
			}
		})
	}
}

// TestGarbagePayloads checks that unusable events fail their invocation
// and that the process keeps serving.
func TestGarbagePayloads(t *testing.T) {
	f := start(t, nil)
	tests := []struct {
		name    string
		payload string
	}{
		{"not JSON", "this is not JSON"},
		{"truncated JSON", `{"awslogs":{"data":"H4sI`},
		{"JSON array", `[1,2,3]`},
		{"JSON string", `"hello"`},
		{"empty object", `{}`},
		{"unknown shape", `{"Records":[{"eventSource":"aws:s3","s3":{}}]}`},
		{"bad base64", `{"awslogs":{"data":"!!!not base64!!!"}}`},
		{"bad gzip", `{"awslogs":{"data":"aGVsbG8gd29ybGQ="}}`},
		{"EventBridge detail not an object", `{"detail-type":"AWS API Call via CloudTrail","detail":[}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fnErr := f.invoke(t, []byte(tt.payload))
			if fnErr == nil {
				t.Fatal("the invocation succeeded; want an error (Lambda retries, then dead-letters the event)")
			}
			if fnErr.ErrorType != ErrTypeInvalidEvent {
				t.Errorf("error type %q (%s), want %s", fnErr.ErrorType, fnErr.ErrorMessage, ErrTypeInvalidEvent)
			}
		})
	}
	if exited, err := f.fn.Exited(); exited {
		t.Fatalf("the function exited: %v", err)
	}
	if s := f.invokeOK(t, ctt.EventBridge(ctt.StolenFromForeignIP.JSON())); s.Published != 1 {
		t.Errorf("after garbage: summary %+v, want the alert published", s)
	}
}
