package lambdatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Fake credentials and region of a started function. They are only ever
// sent to loopback servers.
const (
	// FakeAccessKeyID is the function's AWS_ACCESS_KEY_ID.
	FakeAccessKeyID = "ASIALAMBDATEST000001"
	// FakeSecretAccessKey is the function's AWS_SECRET_ACCESS_KEY.
	FakeSecretAccessKey = "lambdatest/secret/0000000000000000000000"
	// FakeSessionToken is the function's AWS_SESSION_TOKEN.
	FakeSessionToken = "lambdatest-session-token"
	// Region is the function's AWS_REGION.
	Region = "us-east-1"
)

// Function is a bootstrap process serving a Runtime. Invoke (from the
// embedded Runtime) sends it events; once the process exits, every
// invocation returns an error.
type Function struct {
	*Runtime

	cmd    *exec.Cmd
	stdout *os.File
	stderr *os.File
	exited chan struct{}
	exit   error
}

// Start runs the Lambda bootstrap at bootstrapPath against a new Runtime,
// as Lambda would: AWS_LAMBDA_RUNTIME_API points at the Runtime, the
// credentials are fake (FakeAccessKeyID, ...), AWS_REGION is Region, IMDS
// and shared config files are off, and no AWS_* variable of the test's own
// environment is inherited. env is applied last and overrides any of these
// (e.g. AWS_ENDPOINT_URL_EC2 from Cloud.Env). The process is killed when
// the test ends; if the test failed, its output is logged.
func Start(t testing.TB, bootstrapPath string, env map[string]string) *Function {
	t.Helper()
	rt := NewRuntime(t)
	dir := t.TempDir()
	vars := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          rt.Address(),
		"AWS_ACCESS_KEY_ID":               FakeAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":           FakeSecretAccessKey,
		"AWS_SESSION_TOKEN":               FakeSessionToken,
		"AWS_REGION":                      Region,
		"AWS_DEFAULT_REGION":              Region,
		"AWS_EC2_METADATA_DISABLED":       "true",
		"AWS_CONFIG_FILE":                 filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":     filepath.Join(dir, "no-aws-credentials"),
		"AWS_LAMBDA_FUNCTION_NAME":        "lambdatest",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/lambdatest",
		"AWS_LAMBDA_LOG_STREAM_NAME":      "lambdatest",
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"LAMBDA_TASK_ROOT":                filepath.Dir(bootstrapPath),
	}
	for k, v := range env {
		vars[k] = v
	}
	f := &Function{Runtime: rt, exited: make(chan struct{})}
	// Files, not pipes: a line the function wrote before it answered an
	// invocation is readable as soon as Invoke returns, with no copying
	// goroutine to race.
	var err error
	if f.stdout, err = os.Create(filepath.Join(dir, "stdout")); err != nil {
		t.Fatalf("lambdatest: %v", err)
	}
	if f.stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
		t.Fatalf("lambdatest: %v", err)
	}
	f.cmd = exec.Command(bootstrapPath)
	f.cmd.Dir = dir
	f.cmd.Env = append(inheritedEnv(), envList(vars)...)
	f.cmd.Stdout = f.stdout
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("lambdatest: start %s: %v", bootstrapPath, err)
	}
	go func() {
		err := f.cmd.Wait()
		if err == nil {
			err = fmt.Errorf("exited with status 0")
		}
		f.exit = fmt.Errorf("the function process %s: %w", filepath.Base(bootstrapPath), err)
		// Exited first, then the pending invocations fail: whoever sees the failure sees the exit.
		close(f.exited)
		rt.fail(f.exit)
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		select {
		case <-f.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("lambdatest: the function process %d did not exit after kill", f.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("function stdout:\n%s", tail(f.Stdout(), 8000))
			t.Logf("function stderr:\n%s", tail(f.Stderr(), 8000))
		}
		_ = f.stdout.Close()
		_ = f.stderr.Close()
	})
	return f
}

// Stdout returns everything the function wrote to standard output so far.
func (f *Function) Stdout() string { return readAll(f.stdout) }

// Stderr returns everything the function wrote to standard error so far.
func (f *Function) Stderr() string { return readAll(f.stderr) }

// readAll reads a whole output file ("" if it cannot be read).
func readAll(file *os.File) string {
	b, err := os.ReadFile(file.Name())
	if err != nil {
		return ""
	}
	return string(b)
}

// StdoutLines returns the non-empty lines of Stdout.
func (f *Function) StdoutLines() []string {
	var out []string
	for _, l := range strings.Split(f.Stdout(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// Exited reports whether the process has exited, and how.
func (f *Function) Exited() (bool, error) {
	select {
	case <-f.exited:
		return true, f.exit
	default:
		return false, nil
	}
}

// inheritedEnv is the test's environment without anything that could
// change what the function talks to: AWS_* and Lambda variables, and
// proxies.
func inheritedEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		u := strings.ToUpper(k)
		switch {
		case strings.HasPrefix(u, "AWS_"), strings.HasPrefix(u, "_X_AMZN"), strings.HasPrefix(u, "LAMBDA_"),
			strings.HasPrefix(u, "DEFENDERS_"), strings.HasSuffix(u, "_PROXY"), u == "_HANDLER":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// envList renders vars as sorted KEY=VALUE entries.
func envList(vars map[string]string) []string {
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
