package locker

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEvent(t *testing.T) {
	apiCall := func(name string) string {
		return `{"version":"0","id":"e1","detail-type":"AWS API Call via CloudTrail","source":"aws.ec2","account":"111122223333","time":"2026-01-02T03:04:05Z","region":"us-east-1","detail":{"eventSource":"ec2.amazonaws.com","eventName":"` + name + `"}}`
	}
	tests := []struct {
		name    string
		raw     string
		want    Event
		wantErr error
	}{
		{name: "a state-change notification names the instance and its state",
			raw:  string(stateChange("i-0abc1234def567890", "running")),
			want: Event{Kind: KindStateChange, InstanceID: "i-0abc1234def567890", State: "running"}},
		{name: "a terminated notification is accepted",
			raw:  string(stateChange("i-0abc1234", "terminated")),
			want: Event{Kind: KindStateChange, InstanceID: "i-0abc1234", State: "terminated"}},
		{name: "a scheduled event asks for a reconcile",
			raw:  scheduled,
			want: Event{Kind: KindScheduled}},
		{name: "an Elastic IP association is an API call event",
			raw:  apiCall("AssociateAddress"),
			want: Event{Kind: KindAPICall, APICall: "AssociateAddress"}},
		{name: "empty input is malformed", raw: "  ", wantErr: ErrMalformedEvent},
		{name: "text that is not JSON is malformed", raw: "hello", wantErr: ErrMalformedEvent},
		{name: "a JSON array is malformed", raw: `[1,2]`, wantErr: ErrMalformedEvent},
		{name: "an object without detail-type is malformed", raw: `{"source":"aws.ec2"}`, wantErr: ErrMalformedEvent},
		{name: "a bad time is malformed",
			raw: strings.Replace(scheduled, "2026-01-02T03:05:00Z", "yesterday", 1), wantErr: ErrMalformedEvent},
		{name: "a state change without detail is malformed",
			raw:     `{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2"}`,
			wantErr: ErrMalformedEvent},
		{name: "a state change whose detail is a string is malformed",
			raw:     `{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":"running"}`,
			wantErr: ErrMalformedEvent},
		{name: "a state change with a bad instance id is malformed",
			raw: string(stateChange("i-XYZ", "running")), wantErr: ErrMalformedEvent},
		{name: "a state change with an unknown state is malformed",
			raw: string(stateChange("i-0abc1234def567890", "exploded")), wantErr: ErrMalformedEvent},
		{name: "a state change from the wrong source is unsupported",
			raw:     strings.Replace(string(stateChange("i-0abc1234def567890", "running")), `"aws.ec2"`, `"my.app"`, 1),
			wantErr: ErrUnsupportedEvent},
		{name: "another detail-type is unsupported",
			raw:     `{"detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","detail":{}}`,
			wantErr: ErrUnsupportedEvent},
		{name: "an API call that does not change addresses is unsupported",
			raw: apiCall("RunInstances"), wantErr: ErrUnsupportedEvent},
		{name: "an API call event without eventName is malformed",
			raw: apiCall(""), wantErr: ErrMalformedEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent([]byte(tt.raw))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "locker: parse event") {
					t.Errorf("err %q lacks context", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tt.want.Kind || got.InstanceID != tt.want.InstanceID || got.State != tt.want.State || got.APICall != tt.want.APICall {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
