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
	url := flag.String("url", checkip.DefaultURL, "checkip endpoint (http or https)")
	flag.Parse()
	cidr, err := pin(context.Background(), *file, *url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pinssh:", err)
		os.Exit(1)
	}
	fmt.Printf("pinned %s=%s in %s; commit it so that CI synthesizes the same SSH rule\n", checkip.ContextKey, cidr, *file)
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
