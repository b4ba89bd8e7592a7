package main

// Shipped-binary tests of the delivery guarantees: SNS retries, dead
// letters, failed invocations and the Kinesis partial-batch response.

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// TestSNSRetries checks that throttling and server errors are retried and
// the alert is published once.
func TestSNSRetries(t *testing.T) {
	throttled := lambdatest.Errorf(http.StatusBadRequest, "Throttled", "Rate exceeded")
	internal := lambdatest.Errorf(http.StatusInternalServerError, "InternalError", "Internal error")
	tests := []struct {
		name   string
		faults []*lambdatest.APIError
	}{
		{"throttled 3 times", lambdatest.Repeat(3, throttled)},
		{"500 3 times", lambdatest.Repeat(3, internal)},
		{"throttled then 500", []*lambdatest.APIError{throttled, internal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			f.sns.InjectFaults("Publish", tt.faults...)
			s := f.invokeOK(t, ctt.EventBridge(ctt.StolenFromForeignIP.JSON()))
			if got := len(f.sns.Messages()); got != 1 || s.Published != 1 {
				t.Errorf("%d messages published (summary %+v), want 1", got, s)
			}
			if got, want := f.sns.Count("Publish"), len(tt.faults)+1; got != want {
				t.Errorf("%d Publish calls, want %d", got, want)
			}
			if n := f.sqs.Count(""); n != 0 {
				t.Errorf("%d SQS calls, want none", n)
			}
		})
	}
}

// TestDeadLetters checks that alerts SNS does not take land in the
// dead-letter queue, and that no alert is lost.
func TestDeadLetters(t *testing.T) {
	const n = 12
	tests := []struct {
		name         string
		setup        func(f *fixture)
		wantAttempts int // per dead-lettered alert; 0: not checked
		allDead      bool
	}{
		{
			name:         "SNS down",
			setup:        func(f *fixture) { f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error")) },
			wantAttempts: 4,
			allDead:      true,
		},
		{
			name: "SNS refuses (permanent error, no retries)",
			setup: func(f *fixture) {
				f.sns.SetFailure(lambdatest.Errorf(403, "AuthorizationError", "not authorized to perform: SNS:Publish"))
			},
			wantAttempts: 1,
			allDead:      true,
		},
		{
			name: "SNS flaky",
			setup: func(f *fixture) {
				f.sns.InjectFaults("Publish", lambdatest.Repeat(3*n, f.sns.Throttled())...)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			tt.setup(f)
			event, want := stolenBatch(n)
			s := f.invokeOK(t, event)
			published, dead := f.uniqIDs(t)
			all := append(slices.Clone(published), dead...)
			sort.Strings(all)
			if !slices.Equal(all, want) {
				t.Fatalf("alerts lost or duplicated:\npublished %v\ndead-lettered %v\nwant %v", published, dead, want)
			}
			if s.Published != len(published) || s.DeadLettered != len(dead) {
				t.Errorf("summary %+v, want %d published and %d dead-lettered", s, len(published), len(dead))
			}
			if tt.allDead && len(dead) != n {
				t.Errorf("%d alerts dead-lettered, want %d", len(dead), n)
			}
			for i, d := range f.deadLetters(t) {
				msg := f.sqs.Messages()[i]
				if d.Kind != "alert" || d.TopicARN != f.topicARN || d.Error == "" || d.RequestID == "" ||
					!strings.HasPrefix(d.Subject, "Potential Credential Compromise for ") || d.FailedAt == "" {
					t.Errorf("dead letter %+v", d)
				}
				if tt.wantAttempts != 0 && d.Attempts != tt.wantAttempts {
					t.Errorf("dead letter after %d attempts, want %d", d.Attempts, tt.wantAttempts)
				}
				if msg.Attributes["kind"] != "alert" || msg.Attributes["type"] != "BadSource" ||
					msg.Attributes["severity"] != "HIGH" || !strings.HasPrefix(msg.Attributes["uniq_id"], ctt.InstanceID) {
					t.Errorf("dead letter attributes %v", msg.Attributes)
				}
			}
			em := f.lastMetrics(t)
			if metric(t, em, "PublishFailures") != len(dead) || metric(t, em, "DeadLettered") != len(dead) {
				t.Errorf("metrics %v, want %d publish failures dead-lettered", em, len(dead))
			}
		})
	}
}

// TestNothingDelivered checks that when neither SNS nor the dead-letter
// queue takes the alerts, the invocation fails, and that Lambda's retry
// delivers them.
func TestNothingDelivered(t *testing.T) {
	f := start(t, nil)
	f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error"))
	f.sqs.SetFailure(f.sqs.ServerError())
	event, want := stolenBatch(3)
	_, fnErr := f.invoke(t, event)
	if fnErr == nil {
		t.Fatal("the invocation succeeded; want an error so that Lambda retries it")
	}
	if fnErr.ErrorType != ErrTypeUndelivered || !strings.Contains(fnErr.ErrorMessage, "3 alerts") {
		t.Errorf("error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
	}
	if em := f.lastMetrics(t); metric(t, em, "Undelivered") != 3 {
		t.Errorf("metrics %v", em)
	}
	// Lambda retries the event once the queue is back.
	f.sqs.SetFailure(nil)
	s := f.invokeOK(t, event)
	if _, dead := f.uniqIDs(t); !slices.Equal(dead, want) || s.DeadLettered != 3 {
		t.Errorf("after the retry, dead-lettered %v (summary %+v), want %v", dead, s, want)
	}
}

// TestKinesisBatchItemFailures checks the partial batch response.
func TestKinesisBatchItemFailures(t *testing.T) {
	payloads := [][]byte{
		ctt.CWLPayload(ctt.InstanceFromPublicIP.JSON()),                  // 0: legitimate
		ctt.CWLPayload(stolen(attackerIP(1), 1)),                         // 1: alert
		ctt.CWLPayload(ctt.IAMUserCall.JSON(), stolen(attackerIP(2), 2)), // 2: alert
		[]byte("this is not a CloudWatch Logs payload"),                  // 3: malformed, not retried
		ctt.CWLPayload(ctt.IAMUserCall.JSON()),                           // 4: nothing to check
	}
	event := ctt.KinesisEvent(payloads...)
	down := lambdatest.Errorf(500, "InternalError", "Internal error")
	tests := []struct {
		name     string
		setup    func(f *fixture)
		wantSeqs []int
		wantDead int
	}{
		{name: "delivered", setup: func(*fixture) {}},
		{name: "SNS down, dead-lettered", setup: func(f *fixture) { f.sns.SetFailure(down) }, wantDead: 2},
		{name: "SNS and SQS down", setup: func(f *fixture) { f.sns.SetFailure(down); f.sqs.SetFailure(f.sqs.ServerError()) }, wantSeqs: []int{1, 2}},
		{
			name: "inventory down: undecided records are retried",
			setup: func(f *fixture) {
				f.cloud.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(20,
					lambdatest.Errorf(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."))...)
			},
			wantSeqs: []int{0, 1, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			tt.setup(f)
			resp, fnErr := f.invoke(t, event)
			if fnErr != nil {
				t.Fatalf("function error %s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
			}
			var got struct {
				BatchItemFailures []struct {
					ItemIdentifier string `json:"itemIdentifier"`
				} `json:"batchItemFailures"`
			}
			if err := json.Unmarshal(resp, &got); err != nil {
				t.Fatalf("response %s: %v", resp, err)
			}
			var seqs []string
			for _, f := range got.BatchItemFailures {
				seqs = append(seqs, f.ItemIdentifier)
			}
			var want []string
			for _, i := range tt.wantSeqs {
				want = append(want, ctt.KinesisSequence(i))
			}
			if !slices.Equal(seqs, want) {
				t.Errorf("batchItemFailures %v, want %v", seqs, want)
			}
			if n := len(f.sqs.Messages()); n != tt.wantDead {
				t.Errorf("%d dead letters, want %d", n, tt.wantDead)
			}
			if em := f.lastMetrics(t); metric(t, em, "Malformed") != 1 {
				t.Errorf("metrics %v, want 1 malformed record", em)
			}
		})
	}
}

// TestUndecidedFailsAsyncInvocation checks that records the inventory could
// not decide fail a CloudWatch Logs invocation, so that Lambda retries it
// (and finally dead-letters the event), instead of being dropped.
func TestUndecidedFailsAsyncInvocation(t *testing.T) {
	f := start(t, nil)
	f.cloud.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(3,
		lambdatest.Errorf(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."))...)
	event, _ := stolenBatch(2)
	_, fnErr := f.invoke(t, event)
	if fnErr == nil || fnErr.ErrorType != ErrTypeUndecided {
		t.Fatalf("function error %+v, want %s", fnErr, ErrTypeUndecided)
	}
	if !strings.Contains(fnErr.ErrorMessage, "2 records") || !strings.Contains(fnErr.ErrorMessage, "UnauthorizedOperation") {
		t.Errorf("error message %q does not say what failed", fnErr.ErrorMessage)
	}
	if n := len(f.sns.Messages()); n != 0 {
		t.Errorf("%d alerts published without an inventory answer", n)
	}
	if em := f.lastMetrics(t); metric(t, em, "Undecided") != 2 {
		t.Errorf("metrics %v, want 2 undecided", em)
	}
}

// TestSNSOutageDoesNotMultiplyDeadLetters checks that an alert sent to the
// dead-letter queue is remembered like a published one: the attack goes
// on during an SNS outage, and its repeats add no dead letters.
func TestSNSOutageDoesNotMultiplyDeadLetters(t *testing.T) {
	f := start(t, nil)
	f.sns.SetFailure(lambdatest.Errorf(500, "InternalError", "Internal error"))
	event, want := stolenBatch(4)
	for range 3 {
		f.invokeOK(t, event)
	}
	repeat := ctt.EventBridge(stolen(attackerIP(0), 99)) // the same instance and address, another call
	s := f.invokeOK(t, repeat)
	if _, dead := f.uniqIDs(t); !slices.Equal(dead, want) {
		t.Errorf("dead-lettered %v, want each alert once: %v", dead, want)
	}
	if s.Suppressed != 1 || s.DeadLettered != 0 {
		t.Errorf("repeat summary %+v, want it suppressed", s)
	}
}
