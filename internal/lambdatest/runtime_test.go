package lambdatest

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := CleanupBuilds(); err != nil {
		println(err.Error())
	}
	os.Exit(code)
}

// echoResponse is what testdata/echo answers.
type echoResponse struct {
	RequestID   string          `json:"requestId"`
	FunctionARN string          `json:"functionArn"`
	DeadlineMs  int64           `json:"deadlineMs"`
	Echo        json.RawMessage `json:"echo"`
	Env         *string         `json:"env"`
}

func invokeEcho(t *testing.T, f *Function, payload string) (echoResponse, *ErrorPayload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body, fnErr, err := f.Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("invoke %s: %v", payload, err)
	}
	var r echoResponse
	if fnErr == nil {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("response %q: %v", body, err)
		}
	}
	return r, fnErr
}

func TestRuntimeAPI(t *testing.T) {
	bin := BuildBootstrap(t, "./testdata/echo")
	// A variable of the test's own environment that must not reach the function.
	t.Setenv("AWS_PROFILE", "leaked-from-the-test")

	t.Run("an event is delivered with a request id, the function ARN and a deadline", func(t *testing.T) {
		f := Start(t, bin, nil)
		f.Timeout = 5 * time.Second
		before := time.Now()
		r, fnErr := invokeEcho(t, f, `{"hello":"world"}`)
		if fnErr != nil {
			t.Fatalf("function error: %+v", fnErr)
		}
		if len(r.RequestID) != 36 || r.FunctionARN != DefaultFunctionARN {
			t.Errorf("request id %q, function ARN %q", r.RequestID, r.FunctionARN)
		}
		dl := time.UnixMilli(r.DeadlineMs)
		if dl.Before(before.Add(f.Timeout-time.Millisecond)) || dl.After(time.Now().Add(f.Timeout)) {
			t.Errorf("deadline %v is not %v after the invocation at %v", dl, f.Timeout, before)
		}
		if string(r.Echo) != `{"hello":"world"}` {
			t.Errorf("echo %s", r.Echo)
		}
	})

	t.Run("each invocation gets its own request id", func(t *testing.T) {
		f := Start(t, bin, nil)
		a, _ := invokeEcho(t, f, `{}`)
		b, _ := invokeEcho(t, f, `{}`)
		if a.RequestID == b.RequestID {
			t.Errorf("both invocations had request id %s", a.RequestID)
		}
	})

	t.Run("a function error comes back as an error payload and the process keeps serving", func(t *testing.T) {
		f := Start(t, bin, nil)
		_, fnErr := invokeEcho(t, f, `{"fail":"boom"}`)
		if fnErr == nil || fnErr.ErrorMessage != "boom" || fnErr.ErrorType != "errorString" {
			t.Fatalf("error payload %+v, want errorString boom", fnErr)
		}
		if _, fnErr := invokeEcho(t, f, `{}`); fnErr != nil {
			t.Fatalf("next invocation failed: %+v", fnErr)
		}
	})

	t.Run("the test's AWS variables do not reach the function", func(t *testing.T) {
		f := Start(t, bin, nil)
		r, _ := invokeEcho(t, f, `{"env":"AWS_PROFILE"}`)
		if r.Env != nil {
			t.Errorf("the function sees AWS_PROFILE=%q", *r.Env)
		}
		r, _ = invokeEcho(t, f, `{"env":"AWS_ACCESS_KEY_ID"}`)
		if r.Env == nil || *r.Env != FakeAccessKeyID {
			t.Errorf("AWS_ACCESS_KEY_ID = %v, want the fake key", r.Env)
		}
	})

	t.Run("the caller's environment overrides the defaults", func(t *testing.T) {
		f := Start(t, bin, map[string]string{"AWS_REGION": "eu-west-3"})
		r, _ := invokeEcho(t, f, `{"env":"AWS_REGION"}`)
		if r.Env == nil || *r.Env != "eu-west-3" {
			t.Errorf("AWS_REGION = %v, want eu-west-3", r.Env)
		}
	})

	t.Run("an exiting process fails the invocation instead of hanging", func(t *testing.T) {
		f := Start(t, bin, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _, err := f.Invoke(ctx, []byte(`{"exit":true}`))
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("err = %v, want the process's exit", err)
		}
		if exited, _ := f.Exited(); !exited {
			t.Error("Exited() = false after the process exited")
		}
		if _, _, err := f.Invoke(ctx, []byte(`{}`)); err == nil {
			t.Error("an invocation after the exit succeeded")
		}
	})

	t.Run("an init error is recorded and fails the invocation", func(t *testing.T) {
		f := Start(t, bin, map[string]string{"ECHO_INIT_ERROR": "no config"})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, _, err := f.Invoke(ctx, []byte(`{}`)); err == nil {
			t.Fatal("invocation succeeded despite the init error")
		}
		p := f.InitError()
		if p == nil || p.ErrorMessage != "no config" || p.ErrorType != "Echo.InitError" {
			t.Errorf("init error %+v", p)
		}
	})

	t.Run("an invocation nobody picks up ends with its context", func(t *testing.T) {
		rt := NewRuntime(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, _, err := rt.Invoke(ctx, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Errorf("err = %v, want the context's deadline", err)
		}
	})
}

func TestBuildBootstrap(t *testing.T) {
	t.Run("a package is built once per test binary", func(t *testing.T) {
		a := BuildBootstrap(t, "./testdata/echo")
		b := BuildBootstrap(t, "./testdata/echo")
		if a != b {
			t.Errorf("two builds: %s and %s", a, b)
		}
	})

	t.Run("ModuleDeps lists the modules linked into the binary", func(t *testing.T) {
		deps := ModuleDeps(t, BuildBootstrap(t, "./testdata/echo"))
		if !slices.Contains(deps, "github.com/aws/aws-lambda-go") {
			t.Errorf("deps %v lack github.com/aws/aws-lambda-go", deps)
		}
	})

}
