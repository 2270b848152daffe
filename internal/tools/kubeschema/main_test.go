package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ kind, apiVersion, want string }{
		{"ConfigMap", "v1", "configmap-v1.json"},
		{"Deployment", "apps/v1", "deployment-apps-v1.json"},
		{"PodDisruptionBudget", "policy/v1", "poddisruptionbudget-policy-v1.json"},
		{"ScaledObject", "keda.sh/v1alpha1", "scaledobject-keda-v1alpha1.json"},
		{"PrometheusRule", "monitoring.coreos.com/v1", "prometheusrule-monitoring-v1.json"},
	} {
		if got := FileName(tc.kind, tc.apiVersion); got != tc.want {
			t.Errorf("FileName(%s, %s) = %s, want %s", tc.kind, tc.apiVersion, got, tc.want)
		}
	}
}

// jsonDefs decodes definitions written as JSON, as swagger.json holds them.
func jsonDefs(t *testing.T, s string) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

const fixtureDefs = `{
  "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "x.Spec": {"type": "object", "properties": {"port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}, "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}, "children": {"type": "array", "items": {"$ref": "#/definitions/x.Spec"}}}},
  "x.Unused": {"type": "object", "properties": {"a": {"type": "string"}}},
  "x.Thing": {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}, "spec": {"$ref": "#/definitions/x.Spec"}},
    "x-kubernetes-group-version-kind": [{"group": "things.example.com", "version": "v1", "kind": "Thing"}, {"group": "", "version": "v1", "kind": "Thing"}]}
}`

func TestFromSwagger(t *testing.T) {
	out := FromSwagger(jsonDefs(t, fixtureDefs))
	if len(out) != 2 {
		t.Fatalf("got %d schemas, want 2 (one per group-version-kind): %v", len(out), keys(out))
	}
	s := out["thing-things-v1.json"]
	if s == nil {
		t.Fatalf("no thing-things-v1.json among %v", keys(out))
	}
	if s["additionalProperties"] != false {
		t.Error("the root accepts unknown fields")
	}
	props := s["properties"].(map[string]any)
	if got := props["apiVersion"].(map[string]any)["enum"]; !reflect.DeepEqual(got, []any{"things.example.com/v1"}) {
		t.Errorf("apiVersion enum = %v", got)
	}
	if got := props["kind"].(map[string]any)["enum"]; !reflect.DeepEqual(got, []any{"Thing"}) {
		t.Errorf("kind enum = %v", got)
	}
	if got := out["thing-v1.json"]["properties"].(map[string]any)["apiVersion"].(map[string]any)["enum"]; !reflect.DeepEqual(got, []any{"v1"}) {
		t.Errorf("core apiVersion enum = %v", got)
	}
	defs := s["definitions"].(map[string]any)
	for _, want := range []string{objectMeta, "x.Spec", quantity, "io.k8s.apimachinery.pkg.util.intstr.IntOrString"} {
		if defs[want] == nil {
			t.Errorf("definition %s missing", want)
		}
	}
	if defs["x.Unused"] != nil {
		t.Error("x.Unused is copied though nothing refers to it")
	}
	for _, r := range refs(s) {
		if defs[r] == nil {
			t.Errorf("dangling $ref %s", r)
		}
	}
	spec := defs["x.Spec"].(map[string]any)
	if spec["additionalProperties"] != false {
		t.Error("a referred definition accepts unknown fields")
	}
	wantOneOf := func(name, other string) {
		t.Helper()
		d := defs[name].(map[string]any)
		want := []any{map[string]any{"type": "string"}, map[string]any{"type": other}}
		if !reflect.DeepEqual(d["oneOf"], want) || d["type"] != nil {
			t.Errorf("%s = %v, want oneOf string or %s", name, d, other)
		}
	}
	wantOneOf("io.k8s.apimachinery.pkg.util.intstr.IntOrString", "integer")
	wantOneOf(quantity, "number")
	// A map of strings keeps its additionalProperties schema.
	labels := defs[objectMeta].(map[string]any)["properties"].(map[string]any)["labels"].(map[string]any)
	if !reflect.DeepEqual(labels["additionalProperties"], map[string]any{"type": "string"}) {
		t.Errorf("labels additionalProperties = %v", labels["additionalProperties"])
	}
}

const fixtureCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: widgets.example.com
  names: {kind: Widget}
  versions:
    - name: v1alpha1
      served: false
      schema: {openAPIV3Schema: {type: object}}
    - name: v1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [size]
              properties:
                size: {x-kubernetes-int-or-string: true}
                note: {type: string, nullable: true}
                extra:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                  properties:
                    known: {type: string}
`

func TestFromCRD(t *testing.T) {
	out, err := FromCRD([]byte(fixtureCRD), jsonDefs(t, fixtureDefs))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out["widget-widgets-v1.json"] == nil {
		t.Fatalf("got %v, want widget-widgets-v1.json only (v1alpha1 is not served)", keys(out))
	}
	s := out["widget-widgets-v1.json"]
	props := s["properties"].(map[string]any)
	if got := props["metadata"].(map[string]any)["$ref"]; got != refPrefix+objectMeta {
		t.Errorf("metadata = %v, want a $ref to ObjectMeta", props["metadata"])
	}
	if s["definitions"].(map[string]any)[objectMeta] == nil {
		t.Error("ObjectMeta not copied into definitions")
	}
	spec := props["spec"].(map[string]any)
	if spec["additionalProperties"] != false {
		t.Error("spec accepts unknown fields")
	}
	sp := spec["properties"].(map[string]any)
	if sp["size"].(map[string]any)["oneOf"] == nil {
		t.Errorf("size = %v, want oneOf string or integer", sp["size"])
	}
	if !reflect.DeepEqual(sp["note"].(map[string]any)["type"], []any{"string", "null"}) {
		t.Errorf("nullable note type = %v", sp["note"].(map[string]any)["type"])
	}
	if _, set := sp["extra"].(map[string]any)["additionalProperties"]; set {
		t.Error("a field that preserves unknown fields was made strict")
	}
	if _, err := FromCRD([]byte("kind: ConfigMap\n"), nil); err == nil {
		t.Error("a ConfigMap was accepted as a CRD")
	}
}

func TestRunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	swagger := filepath.Join(dir, "swagger.json")
	crd := filepath.Join(dir, "crd.yaml")
	if err := os.WriteFile(swagger, []byte(`{"definitions": `+fixtureDefs+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crd, []byte(fixtureCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "schemas")
	var stderr strings.Builder
	if err := run([]string{"-swagger", swagger, "-crd", crd, "-out", out}, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"thing-v1.json", "thing-things-v1.json", "widget-widgets-v1.json"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := run([]string{"-out", out}, &stderr); err == nil {
		t.Error("no sources accepted")
	}
}

func keys(m map[string]map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
