// Command kubeschema writes the JSON schemas that kubeconform validates
// deploy/'s rendered manifests against, offline. It builds them from two
// kinds of source, both served by the Go module proxy as part of a module:
//
//   - the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json in
//     the k8s.io/kubernetes module): one schema per group, version and kind
//     it defines;
//   - CustomResourceDefinition YAML files (KEDA's and the Prometheus
//     Operator's): one schema per served version.
//
// The schemas are strict: an object that lists its properties accepts no
// other property, so a misspelled field fails validation instead of being
// ignored, and kind and apiVersion must be the ones the schema is for. Each
// schema carries the definitions it refers to, so a file stands alone. File
// names follow kubeconform's "{{ .ResourceKind }}{{ .KindSuffix }}.json"
// (deployment-apps-v1.json, configmap-v1.json, scaledobject-keda-v1alpha1.json).
//
// It does not download anything, validate manifests, or know which kinds
// deploy/ uses: .ci/manifests finds the sources with `go mod download` and
// runs kubeconform.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kubeschema:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kubeschema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	swagger := fs.String("swagger", "", "Kubernetes OpenAPI v2 document (swagger.json)")
	var crds listFlag
	fs.Var(&crds, "crd", "CustomResourceDefinition YAML file (repeatable)")
	out := fs.String("out", "", "directory to write the schemas to (created)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*swagger == "" && len(crds) == 0) {
		return errors.New("usage: kubeschema -out DIR [-swagger swagger.json] [-crd FILE] (-crd repeats)")
	}
	var defs map[string]any
	schemas := map[string]map[string]any{}
	if *swagger != "" {
		b, err := os.ReadFile(*swagger)
		if err != nil {
			return err
		}
		if defs, err = swaggerDefinitions(b); err != nil {
			return fmt.Errorf("%s: %w", *swagger, err)
		}
		for name, s := range FromSwagger(defs) {
			schemas[name] = s
		}
	}
	for _, path := range crds {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := FromCRD(b, defs)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for name, s := range got {
			schemas[name] = s
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for name, s := range schemas {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "kubeschema: %d schemas in %s\n", len(schemas), *out)
	return nil
}

func swaggerDefinitions(b []byte) (map[string]any, error) {
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Definitions) == 0 {
		return nil, errors.New("no definitions")
	}
	return doc.Definitions, nil
}

// FileName is kubeconform's schema file name for a kind of an API version:
// the kind in lower case, the first label of the group, and the version
// ("deployment-apps-v1.json"; "configmap-v1.json" for the core group).
func FileName(kind, apiVersion string) string {
	groupParts := strings.Split(apiVersion, "/")
	suffix := "-" + strings.ToLower(strings.Split(groupParts[0], ".")[0])
	if len(groupParts) > 1 {
		suffix += "-" + strings.ToLower(groupParts[1])
	}
	return strings.ToLower(kind) + suffix + ".json"
}

const (
	refPrefix  = "#/definitions/"
	objectMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
	quantity   = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

// FromSwagger returns a strict schema for every group, version and kind the
// definitions of an OpenAPI v2 document declare, by file name.
func FromSwagger(defs map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, d := range defs {
		def, _ := d.(map[string]any)
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if kind == "" || version == "" {
				continue
			}
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			root := deepCopy(def).(map[string]any)
			delete(root, "x-kubernetes-group-version-kind")
			s := standalone(root, defs)
			pinKind(s, kind, apiVersion)
			out[FileName(kind, apiVersion)] = s
		}
	}
	return out
}

// FromCRD returns a strict schema for every served version of a
// CustomResourceDefinition, by file name. With defs (the Kubernetes
// definitions), metadata is checked as an ObjectMeta; without, it is any
// object.
func FromCRD(b []byte, defs map[string]any) (map[string]map[string]any, error) {
	var crd struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Group string `yaml:"group"`
			Names struct {
				Kind string `yaml:"kind"`
			} `yaml:"names"`
			Versions []struct {
				Name   string `yaml:"name"`
				Served bool   `yaml:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		return nil, err
	}
	if crd.Kind != "CustomResourceDefinition" || crd.Spec.Group == "" || crd.Spec.Names.Kind == "" {
		return nil, errors.New("not a CustomResourceDefinition with a group and a kind")
	}
	out := map[string]map[string]any{}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		if v.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("version %s: no openAPIV3Schema", v.Name)
		}
		root := normalize(v.Schema.OpenAPIV3Schema).(map[string]any)
		apiVersion := crd.Spec.Group + "/" + v.Name
		if props, ok := root["properties"].(map[string]any); ok && defs != nil && defs[objectMeta] != nil {
			props["metadata"] = map[string]any{"$ref": refPrefix + objectMeta}
		}
		s := standalone(root, defs)
		pinKind(s, crd.Spec.Names.Kind, apiVersion)
		out[FileName(crd.Spec.Names.Kind, apiVersion)] = s
	}
	if len(out) == 0 {
		return nil, errors.New("no served version")
	}
	return out, nil
}

// standalone makes root strict and adds, under "definitions", every
// definition it refers to, directly or not, made strict too.
func standalone(root map[string]any, defs map[string]any) map[string]any {
	needed := map[string]bool{}
	var queue []string
	visit := func(s any) {
		for _, r := range refs(s) {
			if !needed[r] {
				needed[r] = true
				queue = append(queue, r)
			}
		}
	}
	visit(root)
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		visit(defs[r])
	}
	strict(root, "")
	if len(needed) > 0 {
		d := map[string]any{}
		for r := range needed {
			def, ok := defs[r]
			if !ok {
				// A dangling reference would make the schema fail to
				// compile; accept anything there instead.
				d[r] = map[string]any{}
				continue
			}
			c := deepCopy(def).(map[string]any)
			delete(c, "x-kubernetes-group-version-kind")
			strict(c, r)
			d[r] = c
		}
		root["definitions"] = d
	}
	root["$schema"] = "http://json-schema.org/draft-04/schema#"
	return root
}

// pinKind requires the kind and apiVersion the schema is for.
func pinKind(s map[string]any, kind, apiVersion string) {
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		s["properties"] = props
	}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
	req, _ := s["required"].([]any)
	for _, f := range []string{"apiVersion", "kind"} {
		if !slices.Contains(req, any(f)) {
			req = append(req, f)
		}
	}
	s["required"] = req
}

// refs lists the definition names a schema refers to.
func refs(s any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok && strings.HasPrefix(r, refPrefix) {
				out = append(out, strings.TrimPrefix(r, refPrefix))
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(s)
	return out
}

// strict rewrites a schema in place: objects that list properties accept no
// others (unless they preserve unknown fields), int-or-string and quantity
// values accept both spellings, nullable values accept null. name is the
// definition's name, or "".
func strict(s map[string]any, name string) {
	if name == quantity {
		clear(s)
		s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}
		return
	}
	if s["format"] == "int-or-string" || s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		delete(s, "format")
		s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if s["nullable"] == true {
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
	}
	props, hasProps := s["properties"].(map[string]any)
	if hasProps {
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				strict(m, "")
			}
		}
		_, set := s["additionalProperties"]
		if !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		if m, ok := s[k].(map[string]any); ok {
			strict(m, "")
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		l, _ := s[k].([]any)
		for _, c := range l {
			if m, ok := c.(map[string]any); ok {
				strict(m, "")
			}
		}
	}
}

// normalize turns YAML-decoded values into JSON ones (map[string]any,
// []any, float64 numbers) so the CRD and swagger schemas mix.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			m[k] = deepCopy(c)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, c := range x {
			l[i] = deepCopy(c)
		}
		return l
	}
	return v
}
