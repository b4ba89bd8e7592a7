package detectorfn

// Event-shape sniffing and the Kinesis partial-batch response.

import (
	"encoding/json"
	"slices"
	"testing"

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
