package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPinWritesTheAddressAndKeepsOtherKeys(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("192.0.2.7\n"))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "cdk.context.json")
	os.WriteFile(file, []byte(`{"availability-zones:account=1:region=us-east-1": ["us-east-1a"]}`), 0o644)
	got, err := pin(context.Background(), file, srv.URL)
	if err != nil || got != "192.0.2.7/32" {
		t.Fatalf("pin = %q, %v", got, err)
	}
	var m map[string]any
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["defenders:sshCidr"] != "192.0.2.7/32" || m["availability-zones:account=1:region=us-east-1"] == nil {
		t.Fatalf("context file = %s", b)
	}
}

func TestPinLeavesTheFileAloneWhenTheLookupFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>captive portal</html>"))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "cdk.context.json")
	if _, err := pin(context.Background(), file, srv.URL); err == nil {
		t.Fatal("want an error for an HTML answer")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("context file was written despite the failed lookup")
	}
}

func TestPinRefusesACorruptContextFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("192.0.2.7"))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "cdk.context.json")
	os.WriteFile(file, []byte(`[1,2`), 0o644)
	if _, err := pin(context.Background(), file, srv.URL); err == nil {
		t.Fatal("want an error for a corrupt context file")
	}
	if b, _ := os.ReadFile(file); string(b) != "[1,2" {
		t.Fatalf("corrupt file was overwritten: %s", b)
	}
}

func TestCheckipURLIsTheOneSynthUses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if body != "" {
			os.WriteFile(p, []byte(body), 0o644)
		}
		return p
	}
	tests := []struct {
		name, flag, cdkJSON, ctxFile string
		want, wantErr                string
	}{
		{name: "the default when nothing names one", want: "https://checkip.amazonaws.com"},
		{name: "cdk.json's context", cdkJSON: `{"app":"go run .","context":{"defenders:checkipUrl":"https://ip.corp.example/"}}`, want: "https://ip.corp.example/"},
		{name: "the context file", ctxFile: `{"defenders:checkipUrl":"http://10.0.0.1/ip"}`, want: "http://10.0.0.1/ip"},
		{name: "cdk.json before the context file", cdkJSON: `{"context":{"defenders:checkipUrl":"https://a.example/"}}`,
			ctxFile: `{"defenders:checkipUrl":"https://b.example/"}`, want: "https://a.example/"},
		{name: "the flag before everything", flag: "https://flag.example/", cdkJSON: `{"context":{"defenders:checkipUrl":"https://a.example/"}}`, want: "https://flag.example/"},
		{name: "a non-string value is an error, not the default", cdkJSON: `{"context":{"defenders:checkipUrl":42}}`, wantErr: "defenders:checkipUrl"},
		{name: "a corrupt cdk.json is an error", cdkJSON: `{`, wantErr: "is not a JSON object"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cj := write(fmt.Sprintf("cdk%d.json", i), tc.cdkJSON)
			cf := write(fmt.Sprintf("ctx%d.json", i), tc.ctxFile)
			got, _, err := checkipURL(tc.flag, cj, cf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("checkipURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
