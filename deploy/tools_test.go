package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// tool returns the path of an external program a test runs: $NAME (upper
// case) if set, else the program on PATH. Without it the test is skipped,
// unless DEPLOY_TOOLS_REQUIRED is set: .ci/manifests installs the pinned
// versions and sets it, so in CI a missing tool fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p := os.Getenv(strings.ToUpper(name)); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DEPLOY_TOOLS_REQUIRED") != "" {
			t.Fatalf("%s not found on PATH, and DEPLOY_TOOLS_REQUIRED is set", name)
		}
		t.Skipf("%s not found on PATH: bash .ci/manifests installs it and runs this test", name)
	}
	return p
}

// kubeVersion is the Kubernetes version the chart is rendered for; the
// schemas .ci/manifests validates against are this version's.
func kubeVersion() string {
	if v := os.Getenv("DEPLOY_KUBE_VERSION"); v != "" {
		return v
	}
	return "1.34.4"
}

// runTool runs a program and returns its standard output, or the error
// with its standard error.
func runTool(t *testing.T, path string, args ...string) ([]byte, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.Join(err, errors.New(strings.TrimSpace(stderr.String())))
	}
	return stdout.Bytes(), nil
}

// decodeAll decodes a stream of YAML documents; name says where they came
// from in a failure.
func decodeAll(t *testing.T, name string, b []byte) []obj {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// rendered is a rendered set of objects, by kind.
type rendered map[string][]obj

func byKind(docs []obj) rendered {
	r := rendered{}
	for _, d := range docs {
		r[str(d, "kind")] = append(r[str(d, "kind")], d)
	}
	return r
}

// named returns the object of a kind whose name ends with suffix ("" for
// the only one of its kind).
func (r rendered) named(t *testing.T, kind, suffix string) obj {
	t.Helper()
	var found []obj
	for _, o := range r[kind] {
		if strings.HasSuffix(str(o, "metadata", "name"), suffix) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s objects named *%s, want 1", len(found), kind, suffix)
	}
	return found[0]
}

const chartDir = "helm/castle-destination"

// helmTemplate renders the chart with the API secret's name and args
// (--set, -f); it fails the test if helm fails.
func helmTemplate(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := helmTemplateErr(t, append([]string{"--set", "castle.existingSecret=castle-destination"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return byKind(decodeAll(t, "rendered YAML", out))
}

func helmTemplateErr(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	helm := tool(t, "helm")
	return runTool(t, helm, append([]string{"template", "cd", chartDir, "--kube-version", kubeVersion()}, args...)...)
}

// kustomizeBuild builds the base with the given components, through an
// overlay in a temporary directory.
func kustomizeBuild(t *testing.T, components ...string) rendered {
	t.Helper()
	kustomize := tool(t, "kustomize")
	if len(components) == 0 {
		out, err := runTool(t, kustomize, "build", ".")
		if err != nil {
			t.Fatalf("kustomize build: %v", err)
		}
		return byKind(decodeAll(t, "rendered YAML", out))
	}
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(dir, wd)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + base + "\ncomponents:\n"
	for _, c := range components {
		k += "  - " + filepath.Join(base, "components", c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, kustomize, "build", dir)
	if err != nil {
		t.Fatalf("kustomize build with %v: %v", components, err)
	}
	return byKind(decodeAll(t, "rendered YAML", out))
}
