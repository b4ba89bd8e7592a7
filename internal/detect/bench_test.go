package detect_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

const (
	benchEvents    = 1000
	benchShare     = 0.2 // instance sessions
	benchInstances = 50
)

// benchEvent is a realistic Lambda CloudWatch Logs event: 1,000 CloudTrail
// records of about 1.5 KB, 20% of them instance sessions (2% of those from
// an attacker's address), the rest IAM users, AWS services and Lambda roles.
func benchEvent() []byte {
	return ctt.CWLEvent(ctt.CWLPayload(ctt.Mix(benchEvents, benchShare, benchInstances, 1)...))
}

// benchInventory is a warm in-memory inventory of the Mix instances.
func benchInventory() detect.Inventory {
	inv := detect.StaticInventory{}
	for k := range benchInstances {
		id := ctt.MixInstance(k)
		inv[id] = detect.Instance{
			ID: id, VpcID: ctt.VpcID,
			PublicIPs:      addrs(ctt.MixInstanceIP(k)),
			NATIPs:         addrs(ctt.NATIP),
			PrivateIPs:     addrs(fmt.Sprintf("10.0.3.%d", k)),
			VPCEndpointIDs: []string{ctt.OwnEndpoint},
		}
	}
	return detect.NewCachedInventory(inv, detect.CacheOptions{})
}

// oursPipeline decodes with package cloudtrail and processes the batch.
func oursPipeline(ctx context.Context, dec *cloudtrail.Decoder, p *detect.Processor, b *cloudtrail.Batch, event []byte) (detect.Result, error) {
	b.Reset()
	if err := dec.DecodeCWLEvent(event, b); err != nil {
		return detect.Result{}, err
	}
	return p.ProcessBatch(ctx, b), nil
}

// naiveRecord is a full encoding/json model of a CloudTrail record, as a
// straightforward implementation would decode it.
type naiveRecord struct {
	EventVersion string `json:"eventVersion"`
	UserIdentity struct {
		Type           string `json:"type"`
		PrincipalID    string `json:"principalId"`
		ARN            string `json:"arn"`
		AccountID      string `json:"accountId"`
		AccessKeyID    string `json:"accessKeyId"`
		UserName       string `json:"userName"`
		InvokedBy      string `json:"invokedBy"`
		SessionContext struct {
			SessionIssuer struct {
				Type        string `json:"type"`
				PrincipalID string `json:"principalId"`
				ARN         string `json:"arn"`
				AccountID   string `json:"accountId"`
				UserName    string `json:"userName"`
			} `json:"sessionIssuer"`
			WebIDFederationData map[string]any    `json:"webIdFederationData"`
			Attributes          map[string]string `json:"attributes"`
			SourceIdentity      string            `json:"sourceIdentity"`
			EC2RoleDelivery     string            `json:"ec2RoleDelivery"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
	EventTime            string           `json:"eventTime"`
	EventSource          string           `json:"eventSource"`
	EventName            string           `json:"eventName"`
	AWSRegion            string           `json:"awsRegion"`
	SourceIPAddress      string           `json:"sourceIPAddress"`
	UserAgent            string           `json:"userAgent"`
	ErrorCode            string           `json:"errorCode"`
	ErrorMessage         string           `json:"errorMessage"`
	RequestParameters    map[string]any   `json:"requestParameters"`
	ResponseElements     map[string]any   `json:"responseElements"`
	AdditionalEventData  map[string]any   `json:"additionalEventData"`
	RequestID            string           `json:"requestID"`
	EventID              string           `json:"eventID"`
	ReadOnly             bool             `json:"readOnly"`
	Resources            []map[string]any `json:"resources"`
	EventType            string           `json:"eventType"`
	ManagementEvent      bool             `json:"managementEvent"`
	RecipientAccountID   string           `json:"recipientAccountId"`
	VPCEndpointID        string           `json:"vpcEndpointId"`
	VPCEndpointAccountID string           `json:"vpcEndpointAccountId"`
	EventCategory        string           `json:"eventCategory"`
	TLSDetails           struct {
		TLSVersion               string `json:"tlsVersion"`
		CipherSuite              string `json:"cipherSuite"`
		ClientProvidedHostHeader string `json:"clientProvidedHostHeader"`
	} `json:"tlsDetails"`
}

// naivePipeline decodes everything with encoding/json, then filters, then
// runs the same detection.
func naivePipeline(ctx context.Context, p *detect.Processor, event []byte) (detect.Result, error) {
	var ev struct {
		AWSLogs struct {
			Data string `json:"data"`
		} `json:"awslogs"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		return detect.Result{}, err
	}
	gz, err := base64.StdEncoding.DecodeString(ev.AWSLogs.Data)
	if err != nil {
		return detect.Result{}, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return detect.Result{}, err
	}
	js, err := io.ReadAll(io.LimitReader(zr, cloudtrail.DefaultMaxPayloadBytes))
	if err != nil {
		return detect.Result{}, err
	}
	var payload struct {
		MessageType string `json:"messageType"`
		LogEvents   []struct {
			ID        string `json:"id"`
			Timestamp int64  `json:"timestamp"`
			Message   string `json:"message"`
		} `json:"logEvents"`
	}
	if err := json.Unmarshal(js, &payload); err != nil {
		return detect.Result{}, err
	}
	var recs []cloudtrail.Record
	for _, le := range payload.LogEvents {
		var r naiveRecord
		if err := json.Unmarshal([]byte(le.Message), &r); err != nil {
			continue
		}
		ui := r.UserIdentity
		rec := cloudtrail.Record{
			EventVersion: r.EventVersion, EventID: r.EventID, EventTime: r.EventTime,
			EventSource: r.EventSource, EventName: r.EventName, EventType: r.EventType, AWSRegion: r.AWSRegion,
			SourceIPAddress: r.SourceIPAddress, UserAgent: r.UserAgent, VPCEndpointID: r.VPCEndpointID,
			VPCEndpointAccountID: r.VPCEndpointAccountID, RecipientAccountID: r.RecipientAccountID, ErrorCode: r.ErrorCode,
			UserIdentity: cloudtrail.UserIdentity{
				Type: ui.Type, PrincipalID: ui.PrincipalID, ARN: ui.ARN, AccountID: ui.AccountID,
				AccessKeyID: ui.AccessKeyID, UserName: ui.UserName, InvokedBy: ui.InvokedBy,
				SessionContext: cloudtrail.SessionContext{
					SessionIssuer:   cloudtrail.SessionIssuer(ui.SessionContext.SessionIssuer),
					EC2RoleDelivery: ui.SessionContext.EC2RoleDelivery, SourceIdentity: ui.SessionContext.SourceIdentity,
				},
			},
			Source: cloudtrail.SourceCWL, DeliveryID: le.ID,
		}
		rec.SetJSON([]byte(le.Message))
		if _, ok := detect.IsInstanceSession(&rec); ok {
			recs = append(recs, rec)
		}
	}
	res := p.Process(ctx, recs)
	res.Stats.Events = len(payload.LogEvents)
	return res, nil
}

func TestNaivePipelineFindsTheSameAlerts(t *testing.T) {
	event := benchEvent()
	ours, err := oursPipeline(t.Context(), new(cloudtrail.Decoder), detect.NewProcessor(benchInventory(), detect.Config{}), new(cloudtrail.Batch), event)
	if err != nil {
		t.Fatal(err)
	}
	naive, err := naivePipeline(t.Context(), detect.NewProcessor(benchInventory(), detect.Config{}), event)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ours: %+v", ours.Stats)
	if ours.Stats.Events != benchEvents || ours.Stats.InstanceSessions < 150 || ours.Stats.Alerts == 0 || ours.Stats.Undecided != 0 {
		t.Errorf("the benchmark batch is not what it claims: %+v", ours.Stats)
	}
	if ours.Stats.InstanceSessions != naive.Stats.InstanceSessions || len(ours.Alerts) != len(naive.Alerts) ||
		ours.Stats.Suppressed != naive.Stats.Suppressed {
		t.Errorf("ours %+v\nnaive %+v", ours.Stats, naive.Stats)
	}
	for i := range ours.Alerts {
		if ours.Alerts[i].UniqID != naive.Alerts[i].UniqID || !bytes.Equal(ours.Alerts[i].CloudTrailEvent, naive.Alerts[i].CloudTrailEvent) {
			t.Errorf("alert %d differs: %s vs %s", i, ours.Alerts[i].UniqID, naive.Alerts[i].UniqID)
		}
	}
}

var benchSink int

// reportPerEvent adds events/s and allocs/event to a benchmark.
func reportPerEvent(b *testing.B, before *runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	events := float64(b.N * benchEvents)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
}

// BenchmarkCWLBatch1000 measures the production path end to end: the
// Lambda event JSON, base64, gunzip, envelope scan, pre-filter, decoding of
// the instance sessions, inventory (warm cache), decision and dedupe.
func BenchmarkCWLBatch1000(b *testing.B) {
	event := benchEvent()
	ctx := context.Background()
	dec := new(cloudtrail.Decoder)
	p := detect.NewProcessor(benchInventory(), detect.Config{})
	var batch cloudtrail.Batch
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for b.Loop() {
		res, err := oursPipeline(ctx, dec, p, &batch, event)
		if err != nil {
			b.Fatal(err)
		}
		benchSink += res.Stats.Alerts + res.Stats.Suppressed
	}
	reportPerEvent(b, &ms)
}

// BenchmarkCWLBatch1000Naive measures the same input through a
// straightforward implementation that decodes every record fully with
// encoding/json before filtering.
func BenchmarkCWLBatch1000Naive(b *testing.B) {
	event := benchEvent()
	ctx := context.Background()
	p := detect.NewProcessor(benchInventory(), detect.Config{})
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for b.Loop() {
		res, err := naivePipeline(ctx, p, event)
		if err != nil {
			b.Fatal(err)
		}
		benchSink += res.Stats.Alerts + res.Stats.Suppressed
	}
	reportPerEvent(b, &ms)
}
