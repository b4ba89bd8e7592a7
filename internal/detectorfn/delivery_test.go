package detectorfn

// The SNS message, the permanent SNS errors and the dead-letter envelope.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

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
