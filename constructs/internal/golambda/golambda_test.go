package golambda

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/test/cdktest"
)

const detectorPkg = "github.com/defenders-cdk/defenders/lambda/detector"

func TestLocateFindsALambdaOfThisModuleWithoutGoList(t *testing.T) {
	root, rel, err := locate(detectorPkg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, rel, "main.go")); err != nil {
		t.Fatalf("locate = %s, %s: %v", root, rel, err)
	}
	for _, bad := range []string{"github.com/defenders-cdk/defenders/lambda/nosuch", "github.com/someone/else/lambda/detector",
		"github.com/defenders-cdk/defenders/../../etc", "github.com/defenders-cdk/defenders/"} {
		if _, _, err := locate(bad); err == nil {
			t.Errorf("%s was found", bad)
		}
	}
}

// TestCodeReturnsAFailedBuildAsAnError: a build that fails is an error from Code (and so from
// detector.New and locker.New), never a panic inside a jsii callback.
func TestCodeReturnsAFailedBuildAsAnError(t *testing.T) {
	if _, err := goVersion(); err != nil { // known before the toolchain is broken below
		t.Fatal(err)
	}
	t.Setenv(EnvCacheDir, t.TempDir())
	t.Setenv("GOROOT", filepath.Join(t.TempDir(), "no-such-goroot"))
	mu.Lock()
	saved := builds
	builds = map[string]string{}
	mu.Unlock()
	t.Cleanup(func() { mu.Lock(); builds = saved; mu.Unlock() })
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	var err error
	cdktest.NoPanic(t, func() {
		_, err = Code(awscdk.NewStack(app, jsii.String("s"), nil), detectorPkg)
	})
	if err == nil || !strings.Contains(err.Error(), "go build github.com/defenders-cdk/defenders/lambda/detector") {
		t.Fatalf("err = %v, want the failed go build named", err)
	}
}

// TestAnUnchangedLambdaIsNotRebuilt: the second Code call with the same inputs reuses the cached
// bootstrap (the build cache is keyed by the inputs), and a changed input gets a new key.
func TestAnUnchangedLambdaIsNotRebuilt(t *testing.T) {
	root, rel, err := locate(detectorPkg)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := inputKey(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := inputKey(root, rel)
	if k1 != k2 {
		t.Fatalf("the same inputs hash differently: %s vs %s", k1, k2)
	}
	if k3, _ := inputKey(root, filepath.Join("lambda", "locker")); k3 == k1 {
		t.Fatal("two packages share a cache key")
	}
}

func TestBuildIsReproducibleLinuxArm64(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, out := range []string{a, b} {
		if err := Build(detectorPkg, out); err != nil {
			t.Fatal(err)
		}
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) {
		t.Fatal("two builds of the same source differ: the asset hash would churn")
	}
	f, err := elf.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
		t.Fatalf("bootstrap is %v %v, want an AArch64 executable", f.Machine, f.Type)
	}
}

func TestBuildErrorsNameThePackage(t *testing.T) {
	err := Build("github.com/defenders-cdk/defenders/lambda/nosuch", filepath.Join(t.TempDir(), "x"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("lambda/nosuch")) {
		t.Fatalf("err = %v", err)
	}
}

// TestBundlingThroughCDK synthesizes a function with bundling on: the asset holds the bootstrap
// and its hash, taken from the output, is the same for two synths.
func TestBundlingThroughCDK(t *testing.T) {
	hash := func() string {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
		var h string
		cdktest.NoPanic(t, func() {
			st := awscdk.NewStack(app, jsii.String("s"), nil)
			code, err := Code(st, detectorPkg)
			if err != nil {
				t.Fatal(err)
			}
			awslambda.NewFunction(st, jsii.String("F"), &awslambda.FunctionProps{
				Runtime: awslambda.Runtime_PROVIDED_AL2023(), Architecture: awslambda.Architecture_ARM_64(),
				Handler: jsii.String("bootstrap"), Code: code,
			})
			asm := app.Synth(nil)
			matches, _ := filepath.Glob(filepath.Join(*asm.Directory(), "asset.*", "bootstrap"))
			if len(matches) != 1 {
				t.Fatalf("assets with a bootstrap: %v", matches)
			}
			h = filepath.Base(filepath.Dir(matches[0]))
		})
		return h
	}
	if a, b := hash(), hash(); a != b {
		t.Fatalf("asset hash changed between synths: %s vs %s", a, b)
	}
}
