// Package golambda builds a Go Lambda function from source with a local `go build` (no Docker):
// GOOS=linux, GOARCH=arm64, CGO_ENABLED=0, -trimpath, -tags lambda.norpc, -buildvcs=false and an
// empty build id, so the same source gives the same `bootstrap` byte for byte and the asset hash
// (taken from the output) only changes when the binary does.
package golambda

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// bundler implements awscdk.ILocalBundling. Its fields are unexported so that they do not leak
// into the asset hash through the bundling options.
type bundler struct {
	pkg string // import path of the package main to build
}

// TryBundle builds the package into outputDir/bootstrap. A failed build panics with the
// compiler's output: CDK treats a false return as "try Docker", which does not exist here and
// would hide the real error.
func (b *bundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	if err := Build(b.pkg, filepath.Join(*outputDir, "bootstrap")); err != nil {
		panic(err.Error())
	}
	return jsii.Bool(true)
}

// Build compiles the Go package main pkg for Lambda (linux/arm64) into out.
func Build(pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "lambda.norpc", "-buildvcs=false",
		"-ldflags", "-s -w -buildid=", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("golambda: go build %s: %v\n%s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

var (
	dirMu    sync.Mutex
	dirCache = map[string]string{}
)

// thisModule is the module that holds the bundled Lambdas.
const thisModule = "github.com/defenders-cdk/defenders"

// packageDir finds the source directory of pkg: inside this repository by walking up from the
// working directory to its go.mod (free), otherwise with `go list` from the current module (a
// user's module that requires ours; about 0.1 s, once per package).
func packageDir(pkg string) (string, error) {
	dirMu.Lock()
	defer dirMu.Unlock()
	if d, ok := dirCache[pkg]; ok {
		return d, nil
	}
	if rel, ok := strings.CutPrefix(pkg, thisModule+"/"); ok {
		if root := moduleRoot(); root != "" {
			d := filepath.Join(root, filepath.FromSlash(rel))
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				dirCache[pkg] = d
				return d, nil
			}
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("golambda: go list %s: %s", pkg, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("golambda: go list %s: %w", pkg, err)
	}
	d := strings.TrimSpace(string(out))
	dirCache[pkg] = d
	return d, nil
}

// moduleRoot is the directory of this module's go.mod above the working directory, or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+thisModule {
				return dir
			}
			return "" // another module (a user's): go list knows where ours is
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Code is Lambda code built locally from the Go package main pkg (an import path such as
// github.com/defenders-cdk/defenders/lambda/detector).
func Code(pkg string) (awslambda.Code, error) {
	dir, err := packageDir(pkg)
	if err != nil {
		return nil, err
	}
	return awslambda.Code_FromAsset(jsii.String(dir), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			// Never used: local bundling always succeeds or fails loudly.
			Image: awscdk.DockerImage_FromRegistry(jsii.String("local-go-build-only")),
			Local: &bundler{pkg: pkg},
		},
	}), nil
}
