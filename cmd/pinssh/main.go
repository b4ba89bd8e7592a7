// Command pinssh looks up this workstation's public address with checkip once and pins it as
// defenders:sshCidr in cdk.context.json, so that later synths (and CI, which would otherwise see
// the runner's address) use the workstation's address. Run it as `make pin-ssh`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/defenders-cdk/defenders/internal/checkip"
)

func main() {
	file := flag.String("file", "cdk.context.json", "context file to update")
	url := flag.String("url", "", "checkip endpoint (http or https); default: "+checkip.ContextKeyURL+" from cdk.json or the context file, else "+checkip.DefaultURL)
	flag.Parse()
	u, from, err := checkipURL(*url, "cdk.json", *file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pinssh:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pinssh: asking %s (%s)\n", u, from)
	cidr, err := pin(context.Background(), *file, u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pinssh:", err)
		os.Exit(1)
	}
	fmt.Printf("pinned %s=%s in %s; commit it so that CI synthesizes the same SSH rule\n", checkip.ContextKey, cidr, *file)
}

// checkipURL decides where to look the address up, as `cdk synth` would: the -url flag, then
// the context of cdk.json (which the CDK CLI reads before cdk.context.json), then the context
// file, then the default. It says where the value came from. A value that is not a string is an
// error, not a silent fallback to the default.
func checkipURL(flagURL, cdkJSON, contextFile string) (string, string, error) {
	if flagURL != "" {
		return flagURL, "-url", nil
	}
	for _, f := range []struct {
		path string
		ctx  func(map[string]any) map[string]any
	}{
		{cdkJSON, func(m map[string]any) map[string]any { c, _ := m["context"].(map[string]any); return c }},
		{contextFile, func(m map[string]any) map[string]any { return m }},
	} {
		b, err := os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("read %s: %w", f.path, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return "", "", fmt.Errorf("%s is not a JSON object: %w", f.path, err)
		}
		v, ok := f.ctx(m)[checkip.ContextKeyURL]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return "", "", fmt.Errorf("%s: %s must be an http(s) URL, got %v", f.path, checkip.ContextKeyURL, v)
		}
		return s, checkip.ContextKeyURL + " in " + f.path, nil
	}
	return checkip.DefaultURL, "the default", nil
}

// pin looks the address up and writes it into the context file, keeping every other key.
func pin(ctx context.Context, file, url string) (string, error) {
	p, note, err := checkip.Lookup(ctx, nil, url)
	if err != nil {
		return "", err
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "pinssh:", note)
	}
	m := map[string]any{}
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("read %s: %w", file, err)
	default:
		if err := json.Unmarshal(b, &m); err != nil {
			return "", fmt.Errorf("%s is not a JSON object, not touching it: %w", file, err)
		}
	}
	m[checkip.ContextKey] = p.String()
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".cdk.context-*.json")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	return p.String(), nil
}
