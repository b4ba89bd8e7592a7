package detectorfn

// A cold container facing a backlog: the production wiring (newHandler)
// against the one EC2 fake, every EC2 call taking a realistic latency on a
// simulated clock, so that the rate limits see the call rate a real
// container would reach.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// simClock is a clock that only moves when told to: by an EC2 call's
// latency, or by a wait of the wiring.
type simClock struct {
	mu     sync.Mutex
	t      time.Time
	waits  int           // Sleep calls: waits for the rate limit
	waited time.Duration // their total
	most   time.Duration // the longest
}

func newSimClock() *simClock { return &simClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep advances the clock by d (a wait costs simulated time, not real
// time).
func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.waits++
	c.waited += d
	c.most = max(c.most, d)
	c.mu.Unlock()
	c.Advance(d)
	return nil
}

// slowEC2 is lambdatest.EC2 whose every call takes latency on the
// simulated clock. It records the instance ids each DescribeInstances call
// asked for.
type slowEC2 struct {
	*lambdatest.EC2
	clock   *simClock
	latency time.Duration

	mu    sync.Mutex
	asked []int // ids per DescribeInstances call
}

func (s *slowEC2) wait() { s.clock.Advance(s.latency) }

func (s *slowEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	s.wait()
	n := len(in.InstanceIds)
	for _, f := range in.Filters {
		if aws.ToString(f.Name) == "instance-id" {
			n += len(f.Values)
		}
	}
	s.mu.Lock()
	s.asked = append(s.asked, n)
	s.mu.Unlock()
	return s.EC2.DescribeInstances(ctx, in, o...)
}

func (s *slowEC2) DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, o ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	s.wait()
	return s.EC2.DescribeNatGateways(ctx, in, o...)
}

func (s *slowEC2) DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, o ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error) {
	s.wait()
	return s.EC2.DescribeVpcEndpoints(ctx, in, o...)
}

func (s *slowEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, o ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	s.wait()
	return s.EC2.DescribeRegions(ctx, in, o...)
}

// calls returns the EC2 calls made so far and the ids asked for.
func (s *slowEC2) calls() (describe, ids, other int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.asked {
		ids += n
	}
	return len(s.asked), ids, s.Calls("DescribeNatGateways") + s.Calls("DescribeVpcEndpoints") + s.Calls("DescribeRegions")
}

// backlogWorld is an account with instances in two regions and the ids of
// instances that exist nowhere (terminated long ago).
type backlogWorld struct {
	home, other *slowEC2
	homeIDs     []string
	otherIDs    []string
	missingIDs  []string
	publicIP    map[string]string
	emf         bytes.Buffer // the handler's EMF records
}

const backlogOtherRegion = "us-east-1"

func newBacklogWorld(clock *simClock, latency time.Duration, homeN, otherN, missingN int) *backlogWorld {
	w := &backlogWorld{
		home:     &slowEC2{EC2: &lambdatest.EC2{}, clock: clock, latency: latency},
		other:    &slowEC2{EC2: &lambdatest.EC2{}, clock: clock, latency: latency},
		publicIP: map[string]string{},
	}
	regions := []ec2types.Region{{RegionName: aws.String(ctt.Region)}, {RegionName: aws.String(backlogOtherRegion)}}
	w.home.SetRegions(regions...)
	w.other.SetRegions(regions...)
	add := func(f *slowEC2, k int) string {
		id := fmt.Sprintf("i-0%016x", 0xb10c000+k)
		vpc := fmt.Sprintf("vpc-0%016x", 0xfeed00+k%20) // 20 VPCs per region
		ip := fmt.Sprintf("52.%d.%d.%d", 16+k/62500, k/250%250, 1+k%250)
		f.PutInstance(ec2types.Instance{
			InstanceId: aws.String(id), VpcId: aws.String(vpc),
			PublicIpAddress: aws.String(ip), PrivateIpAddress: aws.String(fmt.Sprintf("10.%d.%d.%d", k%20, k/250%250, 1+k%250)),
			State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
		})
		w.publicIP[id] = ip
		return id
	}
	for k := range homeN {
		w.homeIDs = append(w.homeIDs, add(w.home, k))
	}
	for k := range otherN {
		w.otherIDs = append(w.otherIDs, add(w.other, 5000+k))
	}
	for k := range 20 {
		vpc := fmt.Sprintf("vpc-0%016x", 0xfeed00+k)
		for _, f := range []*slowEC2{w.home, w.other} {
			f.AddNatGateway(ec2types.NatGateway{VpcId: aws.String(vpc), State: ec2types.NatGatewayStateAvailable,
				NatGatewayAddresses: []ec2types.NatGatewayAddress{{PublicIp: aws.String(fmt.Sprintf("34.240.0.%d", 1+k))}}})
			f.AddVpcEndpoint(ec2types.VpcEndpoint{VpcId: aws.String(vpc), VpcEndpointId: aws.String(fmt.Sprintf("vpce-0%016x", 0xe0+k))})
		}
	}
	for k := range missingN {
		w.missingIDs = append(w.missingIDs, fmt.Sprintf("i-0%016x", 0xdead000+k))
	}
	return w
}

// record is a legitimate call of instance id (from its public address, in
// region), or, for a missing instance, from some address.
func (w *backlogWorld) record(id, region string, n int) []byte {
	ip, ok := w.publicIP[id]
	if !ok {
		ip = "198.51.100.99"
	}
	return ctt.Event{
		Identity: ctt.InstanceIdentity(id, "2.0"), EventSource: "s3.amazonaws.com", EventName: "GetObject",
		Region: region, SourceIP: ip, ReadOnly: true,
		EventID: fmt.Sprintf("0c5a5b52-8b1a-4f0e-9c73-%012d", n),
	}.JSON()
}

// handler wires a cold container over w.
func (w *backlogWorld) handler(clock *simClock) *Handler {
	s := detect.Settings{
		TopicARN: "arn:aws:sns:eu-west-1:111122223333:alerts", DLQURL: "https://sqs.example/q",
		DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Region: ctt.Region,
		SelfRoleARN: ctt.DetectorRoleARN,
	}
	c := Clients{
		EC2: w.home,
		EC2In: func(region string) ec2inventory.API {
			if region == backlogOtherRegion {
				return w.other
			}
			return w.home
		},
		Regions: w.home,
		SNS:     &fakeSNS{},
		SQS:     &fakeSQS{},
	}
	return newHandler(s, c, slog.New(slog.NewTextHandler(io.Discard, nil)), &w.emf, clock.clock())
}

// backlogFigures are what a backlog run measured.
type backlogFigures struct {
	invocations, failed, undecided, alerts int
	describe, ids, otherCalls              int // EC2 calls: DescribeInstances, ids asked, the others
	maxDescribePerBatch                    int
	elapsed                                time.Duration
	waits                                  int // rate-limit waits
	waited, longestWait                    time.Duration
}

func (f backlogFigures) String() string {
	return fmt.Sprintf("%d invocations, %d failed (%d undecided records), %d alerts; EC2: %d DescribeInstances "+
		"(%.2f per batch, at most %d), %d instance ids asked (%.1f per batch, %.1f per call), %d other calls; "+
		"%d rate-limit waits (%v in all, at most %v); %v simulated",
		f.invocations, f.failed, f.undecided, f.alerts, f.describe, float64(f.describe)/float64(f.invocations),
		f.maxDescribePerBatch, f.ids, float64(f.ids)/float64(f.invocations), float64(f.ids)/float64(max(f.describe, 1)),
		f.otherCalls, f.waits, f.waited.Round(time.Millisecond), f.longestWait.Round(time.Millisecond), f.elapsed.Round(time.Millisecond))
}

// run invokes h with every event in turn, as Lambda does in one container.
func (w *backlogWorld) run(t *testing.T, clock *simClock, h *Handler, events [][]byte) backlogFigures {
	t.Helper()
	var f backlogFigures
	began := clock.Now()
	for _, ev := range events {
		d0, _, _ := w.home.calls()
		o0, _, _ := w.other.calls()
		w.emf.Reset()
		_, err := h.Invoke(context.Background(), ev)
		d1, _, _ := w.home.calls()
		o1, _, _ := w.other.calls()
		f.maxDescribePerBatch = max(f.maxDescribePerBatch, d1-d0+o1-o0)
		f.invocations++
		var m metrics
		if jerr := json.Unmarshal(w.emf.Bytes(), &m); jerr != nil {
			t.Fatalf("EMF record %q: %v", w.emf.Bytes(), jerr)
		}
		f.undecided += m.Undecided
		f.alerts += m.Alerts
		if err != nil {
			f.failed++
			var ie messages.InvokeResponse_Error
			if !errors.As(err, &ie) || ie.Type != ErrTypeUndecided {
				t.Errorf("invocation failed with %v", err)
			}
		}
		clock.Advance(5 * time.Millisecond) // Lambda's own overhead between invocations
	}
	for _, s := range []*slowEC2{w.home, w.other} {
		d, ids, o := s.calls()
		f.describe += d
		f.ids += ids
		f.otherCalls += o
	}
	f.elapsed = clock.Now().Sub(began)
	clock.mu.Lock()
	f.waits, f.waited, f.longestWait = clock.waits, clock.waited, clock.most
	clock.mu.Unlock()
	return f
}

// TestBacklogOfUnseenInstances replays a backlog of 100 batches as a cold
// container receives them, every EC2 call taking a realistic latency
// (DescribeInstances answers in about 100 ms; 20 ms is the fast end, which
// drains the backlog fastest and so is the harder case for the rate
// limit): no invocation may fail on the container's own rate limit, and
// instances must be looked up many per call.
func TestBacklogOfUnseenInstances(t *testing.T) {
	type shape struct {
		name   string
		home   int // instances in the home region
		events func(w *backlogWorld) [][]byte
		// maxDescribePerBatch bounds the DescribeInstances calls of one
		// batch: the home region, the hint region and the other region.
		maxDescribePerBatch int
	}
	shapes := []shape{
		{
			// EventBridge delivers one record per invocation: 100 unseen
			// instances, one per invocation, every 10th in the other
			// region and every 25th missing.
			name: "EventBridge, one unseen instance per invocation",
			home: 400,
			events: func(w *backlogWorld) [][]byte {
				var out [][]byte
				for i := range 100 {
					id, region := w.homeIDs[i], ctt.Region
					switch {
					case i%25 == 24:
						id = w.missingIDs[i/25]
					case i%10 == 9:
						id, region = w.otherIDs[i/10], backlogOtherRegion
					}
					out = append(out, ctt.EventBridge(w.record(id, region, i)))
				}
				return out
			},
			maxDescribePerBatch: 3,
		},
		{
			// A CloudWatch Logs subscription delivers batches: 100 batches
			// of 20 records, each with 4 instances never seen before, 2
			// seen in earlier batches, one of the other region every 5th
			// batch and a missing one every 10th: 430 unseen instances.
			name: "CloudWatch Logs, 20 records and 4 to 6 unseen instances per batch",
			home: 400,
			events: func(w *backlogWorld) [][]byte {
				var out [][]byte
				n := 0
				for b := range 100 {
					ids := slices.Clone(w.homeIDs[4*b : 4*b+4])
					if b > 0 {
						ids = append(ids, w.homeIDs[b-1], w.homeIDs[2*(b-1)])
					}
					regions := make([]string, len(ids))
					for i := range regions {
						regions[i] = ctt.Region
					}
					if b%5 == 4 {
						ids, regions = append(ids, w.otherIDs[b/5]), append(regions, backlogOtherRegion)
					}
					if b%10 == 9 {
						ids, regions = append(ids, w.missingIDs[b/10]), append(regions, ctt.Region)
					}
					var recs [][]byte
					for i := range 20 {
						k := i % len(ids)
						recs = append(recs, w.record(ids[k], regions[k], n))
						n++
					}
					out = append(out, ctt.CWLEvent(ctt.CWLPayload(recs...)))
				}
				return out
			},
			maxDescribePerBatch: 3,
		},
		{
			// A busy fleet: batches of 250 records, each from an instance
			// never seen before: two calls per batch, one per 200
			// instances. 20 batches (5,000 instances) keep the fake fast.
			name: "CloudWatch Logs, 20 batches of 250 records from 250 unseen instances",
			home: 5000,
			events: func(w *backlogWorld) [][]byte {
				var out [][]byte
				for b := range 20 {
					var recs [][]byte
					for i := range 250 {
						recs = append(recs, w.record(w.homeIDs[250*b+i], ctt.Region, 250*b+i))
					}
					out = append(out, ctt.CWLEvent(ctt.CWLPayload(recs...)))
				}
				return out
			},
			maxDescribePerBatch: 2,
		},
	}
	for _, sh := range shapes {
		for _, latency := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s, EC2 answering in %v", sh.name, latency), func(t *testing.T) {
				clock := newSimClock()
				w := newBacklogWorld(clock, latency, sh.home, 20, 10)
				h := w.handler(clock)
				f := w.run(t, clock, h, sh.events(w))
				t.Logf("%v", f)
				if f.failed != 0 {
					t.Errorf("%d of %d invocations failed on the inventory: %v", f.failed, f.invocations, f)
				}
				if f.maxDescribePerBatch > sh.maxDescribePerBatch {
					t.Errorf("a batch made %d DescribeInstances calls, want at most %d: %v", f.maxDescribePerBatch, sh.maxDescribePerBatch, f)
				}
			})
		}
	}
}

// clock returns the wiring's clock over c.
func (c *simClock) clock() clock { return clock{now: c.Now, sleep: c.Sleep} }
