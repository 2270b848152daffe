package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EventMap maps exact Segment track event names to Castle security events:
// the operator's EVENT_MAP file, for apps that name their events the
// Segment Spec way ("Signed In") rather than Castle's ("$login.succeeded").
// A name in the map is sent as its type and status; the map wins over
// Castle's legacy names, so it can also remap one of those. The zero value
// maps nothing. An EventMap is read-only once parsed and safe to share.
type EventMap struct {
	m map[string]eventMapEntry
}

type eventMapEntry struct {
	SecurityEvent
	line int
}

// Len is the number of names mapped.
func (em EventMap) Len() int { return len(em.m) }

// Lookup returns the security event the name maps to.
func (em EventMap) Lookup(name string) (SecurityEvent, bool) {
	e, ok := em.m[name]
	return e.SecurityEvent, ok
}

// EventMapError is an EVENT_MAP that cannot be used, with the line (from
// 1) where the problem is.
type EventMapError struct {
	Line int
	Msg  string
}

func (e *EventMapError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Msg }

// ParseEventMap reads an EVENT_MAP YAML document:
//
//	events:
//	  Signed In:    {type: $login, status: $succeeded}
//	  Login Failed: {type: $login, status: $failed}
//
// Every entry needs a type and a status that Castle documents as a
// security event (not $custom or $page) and a pair some endpoint accepts
// ($requested is for $challenge only). A name mapped twice, an unknown key,
// or a document that does not parse is an error too. Errors are
// *EventMapError, naming the line: "line 4: type $logon is not a Castle
// event type" (the caller adds which setting it was). An empty events
// mapping maps nothing.
func ParseEventMap(data []byte) (EventMap, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return EventMap{}, yamlError(err)
	}
	// A second document (after ---) would be ignored: its names would
	// keep the default mapping without a word.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return EventMap{}, yamlError(err)
	case len(next.Content) > 0 && !emptyNode(next.Content[0]):
		return EventMap{}, &EventMapError{next.Content[0].Line, "a second YAML document (after ---): put every name under the one events: mapping"}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return EventMap{}, &EventMapError{1, "the file is empty: it needs an events: mapping"}
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return EventMap{}, &EventMapError{root.Line, "the document is not a mapping: it needs an events: mapping"}
	}
	var events *yaml.Node
	var eventsLine int
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolve(root.Content[i+1])
		if k.Value != "events" {
			return EventMap{}, &EventMapError{k.Line, fmt.Sprintf("unknown key %q: the file has only events:", k.Value)}
		}
		// YAML parsers differ on a repeated key (this one keeps both);
		// taking either would drop the other's names without a word.
		if events != nil {
			return EventMap{}, &EventMapError{k.Line, fmt.Sprintf("events: appears twice (first on line %d): put every name under one events: mapping", eventsLine)}
		}
		events, eventsLine = v, k.Line
	}
	if events == nil {
		return EventMap{}, &EventMapError{root.Line, "no events: mapping"}
	}
	em := EventMap{m: map[string]eventMapEntry{}}
	if events.Kind == yaml.ScalarNode && events.Tag == "!!null" {
		return em, nil
	}
	if events.Kind != yaml.MappingNode {
		return EventMap{}, &EventMapError{events.Line, "events is not a mapping of event names"}
	}
	for i := 0; i+1 < len(events.Content); i += 2 {
		k, v := resolve(events.Content[i]), resolve(events.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return EventMap{}, &EventMapError{k.Line, "an event name must be a non-empty string"}
		}
		name := k.Value
		if prev, dup := em.m[name]; dup {
			return EventMap{}, &EventMapError{k.Line, fmt.Sprintf("%q is mapped twice (first on line %d)", name, prev.line)}
		}
		e, err := parseEntry(name, v)
		if err != nil {
			return EventMap{}, err
		}
		e.line = k.Line
		em.m[name] = e
	}
	return em, nil
}

// emptyNode reports whether n is an empty document's content (a trailing
// --- yields one).
func emptyNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" && n.Style == 0
}

func parseEntry(name string, v *yaml.Node) (eventMapEntry, error) {
	var e eventMapEntry
	if v.Kind != yaml.MappingNode {
		return e, &EventMapError{v.Line, fmt.Sprintf("%q: want {type: ..., status: ...}", name)}
	}
	var typ, status *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		switch k.Value {
		case "type", "status":
			p := &typ
			if k.Value == "status" {
				p = &status
			}
			if *p != nil {
				return e, &EventMapError{k.Line, fmt.Sprintf("%q: %s is given twice (first on line %d)", name, k.Value, (*p).Line)}
			}
			*p = val
		default:
			return e, &EventMapError{k.Line, fmt.Sprintf("%q: unknown key %q (an entry has type and status)", name, k.Value)}
		}
		if val.Kind != yaml.ScalarNode {
			return e, &EventMapError{val.Line, fmt.Sprintf("%q: %s is not a string", name, k.Value)}
		}
	}
	switch {
	case typ == nil:
		return e, &EventMapError{v.Line, fmt.Sprintf("%q has no type", name)}
	case status == nil:
		return e, &EventMapError{v.Line, fmt.Sprintf("%q has no status", name)}
	case typ.Value == "$custom" || typ.Value == "$page":
		return e, &EventMapError{typ.Line, fmt.Sprintf("type %s is not a security event type (a name not in EVENT_MAP is sent as $custom already)", typ.Value)}
	case eventTypes[typ.Value] == 0:
		return e, &EventMapError{typ.Line, fmt.Sprintf("type %s is not a Castle event type", typ.Value)}
	case eventStatuses[status.Value] == 0:
		return e, &EventMapError{status.Line, fmt.Sprintf("status %s is not a Castle event status", status.Value)}
	}
	e.SecurityEvent = SecurityEvent{Type: typ.Value, Status: status.Value}
	if !accepts(Log, e.Type, e.Status) && !accepts(Risk, e.Type, e.Status) && !accepts(Filter, e.Type, e.Status) {
		return e, &EventMapError{status.Line, fmt.Sprintf("no Castle endpoint accepts type %s with status %s", e.Type, e.Status)}
	}
	return e, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlError turns a YAML parse error into an EventMapError naming the
// line. The YAML package counts lines from 1 in its scanner's errors and
// from 0 in its parser's (those that start "did not find expected" or
// name a directive or document), and leaves out a line 0: this counts
// from 1 for both.
func yamlError(err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = "yaml: " + te.Errors[0]
	}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return &EventMapError{1, "not YAML: " + msg}
	}
	line, _ := strconv.Atoi(m[1]) // 0 when there is no line
	problem := m[2]
	switch {
	case strings.HasPrefix(problem, "did not find expected"), strings.HasPrefix(problem, "found duplicate %"),
		strings.HasPrefix(problem, "found incompatible YAML document"), strings.HasPrefix(problem, "found undefined tag handle"):
		line++
	case line == 0:
		line = 1
	}
	return &EventMapError{line, "not YAML: " + problem}
}
