package main

// The artifact itself: what it links, how big it is, how fast it starts.

import (
	"archive/zip"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

func TestShippedBinaryLinksNoCDK(t *testing.T) {
	bin := lambdatest.BuildBootstrap(t, detectorPkg)
	for _, dep := range lambdatest.ModuleDeps(t, bin) {
		if strings.Contains(dep, "jsii") || strings.Contains(dep, "aws-cdk-go") || strings.Contains(dep, "constructs-go") {
			t.Errorf("the Lambda binary links %s", dep)
		}
	}
}

// firstNextServer is a Runtime API that only records when the first GET
// .../invocation/next arrives, and holds it.
func firstNextServer(t testing.TB) (addr string, first <-chan time.Time) {
	ch := make(chan time.Time, 1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/invocation/next") {
			now := time.Now()
			once.Do(func() { ch <- now })
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

// coldStart starts the binary and returns the time from process start to
// its first /next request.
func coldStart(t testing.TB, bin string, env map[string]string) time.Duration {
	t.Helper()
	addr, first := firstNextServer(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"AWS_LAMBDA_RUNTIME_API=" + addr, "AWS_REGION=" + lambdatest.Region,
		"AWS_ACCESS_KEY_ID=" + lambdatest.FakeAccessKeyID, "AWS_SECRET_ACCESS_KEY=" + lambdatest.FakeSecretAccessKey,
		"AWS_SESSION_TOKEN=" + lambdatest.FakeSessionToken, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(t.TempDir(), "none"),
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	select {
	case at := <-first:
		return at.Sub(began)
	case <-time.After(20 * time.Second):
		t.Fatalf("no /next request within 20 s; output:\n%s", out.String())
		return 0
	}
}

// TestFigureColdStart measures process start to first /next request.
func TestFigureColdStart(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" {
		t.Skip("a measurement: make bench runs it (DEFENDERS_FIGURES=1)")
	}
	bin := lambdatest.BuildBootstrap(t, detectorPkg)
	_, env := fakeAWS(t)
	const starts = 11
	d := make([]time.Duration, starts)
	for i := range d {
		d[i] = coldStart(t, bin, env)
	}
	slices.Sort(d)
	t.Logf("cold start (process start to first /next, %s/%s, %d starts): median %v, min %v, max %v",
		runtime.GOOS, runtime.GOARCH, starts, d[starts/2].Round(10*time.Microsecond), d[0].Round(10*time.Microsecond), d[starts-1].Round(10*time.Microsecond))
	if d[starts/2] > 2*time.Second {
		t.Errorf("median cold start %v is over 2 s", d[starts/2])
	}
}

// TestFigureArtifactSize builds the deployed artifact (linux/arm64, the
// bundler's flags) and reports its zipped size.
func TestFigureArtifactSize(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" {
		t.Skip("a measurement: make bench runs it (DEFENDERS_FIGURES=1)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	args := append([]string{"build"}, lambdatest.BuildFlags...)
	cmd := exec.Command("go", append(args, "-o", bin, detectorPkg)...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "bootstrap", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("linux/arm64 bootstrap: %d bytes, zipped (Deflate) %d bytes", len(raw), zipped.Len())
	if zipped.Len() > 50<<20 {
		t.Errorf("zipped artifact %d bytes exceeds Lambda's 50 MB direct upload limit", zipped.Len())
	}
}

// BenchmarkInvokeCWL1000 measures one invocation with a 1,000-event
// CloudWatch Logs batch, end to end through the binary and the fakes (the
// inventory cache warm, deduplication off so that every invocation
// publishes its alerts).
func BenchmarkInvokeCWL1000(b *testing.B) {
	recs := ctt.Mix(1000, 0.6, mixInstances, 7)
	event := ctt.CWLEvent(ctt.CWLPayload(recs...))
	f := start(b, map[string]string{EnvDedupeWindow: "0s"})
	first := f.invokeOK(b, event)
	for b.Loop() {
		f.invokeOK(b, event)
	}
	b.ReportMetric(float64(first.Alerts), "alerts/op")
	b.ReportMetric(f.lastMetrics(b)["DurationMs"].(float64), "handler-ms(last)")
}

// BenchmarkColdStart measures process start to first /next request.
func BenchmarkColdStart(b *testing.B) {
	bin := lambdatest.BuildBootstrap(b, detectorPkg)
	_, env := fakeAWS(b)
	b.ResetTimer()
	for b.Loop() {
		coldStart(b, bin, env)
	}
}
