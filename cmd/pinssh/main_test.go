package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
