package golambda

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/test/cdktest"
)

const detectorPkg = "github.com/defenders-cdk/defenders/lambda/detector"

func TestPackageDirFindsALambdaOfThisModuleWithoutGoList(t *testing.T) {
	d, err := packageDir(detectorPkg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "main.go")); err != nil {
		t.Fatalf("packageDir = %s: %v", d, err)
	}
	if _, err := packageDir("github.com/defenders-cdk/defenders/lambda/nosuch"); err == nil {
		t.Fatal("a package that does not exist was found")
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
			code, err := Code(detectorPkg)
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
