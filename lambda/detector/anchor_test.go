package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// TestFigureAnchorEndToEnd compares the shipped detector with the anchor
// project's detector (jchrisfarris/detect-credential-compromise,
// lambda/detect-cwl.py, Apache-2.0; it is not part of this repository: point
// DEFENDERS_ANCHOR_PY at a copy) end to end. Use the file of commit 83c8e12:
// the re-indentation at 7248b8e (for the CloudFormation template's inline
// code) moved its checks out of the log-event loop, so that version judges
// only the last log event of each Kinesis record, which would flatter it.
// The two sides: each runs as a Lambda function
// behind the same local Runtime API, the anchor with the Python 3 on PATH
// (which must have boto3) and testdata/anchor_runtime.py as its runtime loop,
// ours as the shipped bootstrap. Both get the same Kinesis events, the
// anchor's input shape: 10 records of 100 CloudWatch Logs events each, every
// one an instance-profile session (one in 50 from a foreign address), a new
// event for every invocation so that our deduplication saves nothing. Each
// has its inventory warm: ours its EC2 cache, the anchor its S3 object (a
// local fake) read as its code reads it. Invocations alternate, anchor then
// ours; the figure is the ratio of the median invocation times (Runtime API
// round trip, as Lambda bills it).
//
// The anchor runs three ways (ANCHOR_VARIANT, testdata/anchor_runtime.py):
// as published, which reads its S3 object once per instance-session record
// and creates an SNS client per alert; with that read memoised per
// invocation, the algorithm it evidently meant; and with its boto3 clients
// also kept for the life of the process, the fairest to it.
func TestFigureAnchorEndToEnd(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" {
		t.Skip("a measurement: make bench runs it (DEFENDERS_FIGURES=1)")
	}
	anchorPy := os.Getenv("DEFENDERS_ANCHOR_PY")
	if anchorPy == "" {
		t.Skip("set DEFENDERS_ANCHOR_PY to lambda/detect-cwl.py of jchrisfarris/detect-credential-compromise at 83c8e12")
	}
	out, err := exec.Command("python3", "-c", "import sys, boto3; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("python3 with boto3: %v", err)
	}
	python := strings.TrimSpace(string(out))
	runtimeLoop, err := filepath.Abs("testdata/anchor_runtime.py")
	if err != nil {
		t.Fatal(err)
	}
	anchorPy, err = filepath.Abs(anchorPy)
	if err != nil {
		t.Fatal(err)
	}

	const rounds, records, perRecord = 15, 10, 100
	events := make([][]byte, rounds+1)
	for i := range events {
		payloads := make([][]byte, records)
		for j := range payloads {
			payloads[j] = ctt.CWLPayload(ctt.Mix(perRecord, 1.0, mixInstances, uint64(1000*i+j+1))...)
		}
		events[i] = ctt.KinesisEvent(payloads...)
	}

	// The anchor's inventory, as its inventory.py writes it: each
	// instance's public addresses, and every public address of the
	// account (instances and NAT gateways).
	inv := map[string]any{"instances": map[string][]string{}, "all_ips": []string{ctt.NATIP}}
	for k := range mixInstances {
		inv["instances"].(map[string][]string)[ctt.MixInstance(k)] = []string{ctt.MixInstanceIP(k)}
		inv["all_ips"] = append(inv["all_ips"].([]string), ctt.MixInstanceIP(k))
	}
	invJSON, _ := json.Marshal(inv)
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Instance-Data.json") {
			http.Error(w, "<Error><Code>NoSuchKey</Code></Error>", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(invJSON)
	}))
	t.Cleanup(s3.Close)

	startAnchor := func(variant string) (*lambdatest.Function, *lambdatest.SNS) {
		sns := lambdatest.NewSNS(t)
		dir := t.TempDir()
		bootstrap := filepath.Join(dir, "bootstrap")
		script := fmt.Sprintf("#!/bin/sh\nexec %q %q\n", python, runtimeLoop)
		if err := os.WriteFile(bootstrap, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{
			"ANCHOR_PY": anchorPy, "ANCHOR_VARIANT": variant,
			"BUCKET": "anchor-data", "OBJECT": "Instance-Data.json",
			"TOPICARN": lambdatest.TopicARN("anchor-alerts"), "TOPIC_REGION": lambdatest.Region,
			"AWS_ENDPOINT_URL_S3": s3.URL, "AWS_ENDPOINT_URL_SNS": sns.URL,
		}
		return lambdatest.Start(t, bootstrap, env), sns
	}
	// Deduplication off: the anchor publishes every record it judges bad,
	// and so does ours here.
	ours := start(t, map[string]string{EnvDedupeWindow: "0s"})

	invoke := func(fn *lambdatest.Function, event []byte) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		begin := time.Now()
		_, fnErr, err := fn.Invoke(ctx, event)
		d := time.Since(begin)
		if err != nil || fnErr != nil {
			t.Fatalf("invoke: %v %+v", err, fnErr)
		}
		return d
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	for _, variant := range []struct {
		name, env string
		rounds    int
	}{
		{"as published (an S3 read per instance-session record, an SNS client per alert)", "published", 5},
		{"with its S3 read memoised per invocation", "s3-once", rounds},
		{"with that and its boto3 clients kept for the process", "clients-once", rounds},
	} {
		anchor, anchorSNS := startAnchor(variant.env)
		// Warm both: the first invocation pays imports, clients and our
		// inventory's first lookups.
		invoke(anchor, events[0])
		invoke(ours.fn, events[0])
		var a, o []time.Duration
		anchorBefore, oursBefore := len(anchorSNS.Messages()), len(ours.sns.Messages())
		for i := 1; i <= variant.rounds; i++ {
			a = append(a, invoke(anchor, events[i]))
			o = append(o, invoke(ours.fn, events[i]))
		}
		anchorAlerts, ourAlerts := len(anchorSNS.Messages())-anchorBefore, len(ours.sns.Messages())-oursBefore
		ma, mo := median(a), median(o)
		t.Logf("anchor end to end, %d events per invocation (Kinesis, all instance sessions), anchor %s: anchor %.1f ms, ours %.1f ms (medians of %d alternating invocations); ours %.1fx faster; alerts published over those invocations: anchor %d, ours %d",
			records*perRecord, variant.name, float64(ma.Microseconds())/1e3, float64(mo.Microseconds())/1e3, variant.rounds, float64(ma)/float64(mo), anchorAlerts, ourAlerts)
	}
}
