package sink

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"
)

type schemaDoc struct {
	Schema               string                     `json:"$schema"`
	Type                 string                     `json:"type"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
	If                   struct {
		Properties map[string]struct {
			Const string `json:"const"`
		} `json:"properties"`
	} `json:"if"`
	Then struct {
		Required []string `json:"required"`
	} `json:"then"`
	Else struct {
		Properties map[string]bool `json:"properties"`
	} `json:"else"`
}

type propSchema struct {
	Type    any      `json:"type"` // a name or a list of names
	Minimum *float64 `json:"minimum"`
	Format  string   `json:"format"`
}

func (p propSchema) types() []string {
	switch v := p.Type.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, t := range v {
			out = append(out, t.(string))
		}
		return out
	}
	return nil // any JSON value
}

func jsonType(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	var f float64
	json.Unmarshal(raw, &f)
	if f == float64(int64(f)) {
		return "integer"
	}
	return "number"
}

// TestSchemaAgreesWithEncoder checks record.schema.json against what
// EncodePage writes: the properties are exactly the keys written, the
// required lists hold for backlink and other kinds, and every value has
// the declared type.
func TestSchemaAgreesWithEncoder(t *testing.T) {
	t.Parallel()
	var s schemaDoc
	if err := json.Unmarshal(RecordSchema, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.Type != "object" {
		t.Errorf("schema header: %q %q", s.Schema, s.Type)
	}
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Error("schema should set additionalProperties: false")
	}
	if s.If.Properties["kind"].Const != KindBacklink {
		t.Errorf("schema's if does not test kind == backlink")
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	backlink := Record{JobID: "j", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 1, FetchedAt: at, Kind: KindBacklink,
		SourceURL: str("https://s.example/"), TargetURL: str("https://example.com/"), Anchor: str("a"), Nofollow: boolp(false), SourceTitle: str("t"), Raw: json.RawMessage(`{"x":1}`)}
	backlinkNulls := Record{JobID: "j", Provider: "xovi", Endpoint: "backlinks", Domain: "example.com", Page: 2, FetchedAt: at, Kind: KindBacklink, Raw: json.RawMessage(`{}`)}
	summary := Record{JobID: "j", Provider: "dataforseo", Endpoint: "summary", Domain: "example.com", Page: 1, FetchedAt: at, Kind: "summary", Raw: json.RawMessage(`{"total":3}`)}
	lost := backlink
	lost.Change = "lost"
	body, err := EncodePage([]Record{backlink, backlinkNulls, summary, lost})
	if err != nil {
		t.Fatal(err)
	}
	lines := gunzipLines(t, body)

	var all []string
	for i, line := range lines {
		keys := topKeys(t, line)
		var m map[string]json.RawMessage
		json.Unmarshal([]byte(line), &m)
		isBacklink := i != 2
		for _, k := range s.Required {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks required %s", i, k)
			}
		}
		for _, k := range s.Then.Required {
			if _, ok := m[k]; ok != isBacklink {
				t.Errorf("line %d (backlink %v): %s present %v", i, isBacklink, k, ok)
			}
		}
		if !isBacklink {
			for k, allowed := range s.Else.Properties {
				if _, ok := m[k]; ok && !allowed {
					t.Errorf("line %d: %s is forbidden for kind %s", i, k, summary.Kind)
				}
			}
		}
		for _, k := range keys {
			ps, ok := s.Properties[k]
			if !ok {
				t.Errorf("line %d writes %s, which the schema lacks", i, k)
				continue
			}
			var p propSchema
			json.Unmarshal(ps, &p)
			if ts := p.types(); ts != nil && !slices.Contains(ts, jsonType(m[k])) && !(jsonType(m[k]) == "integer" && slices.Contains(ts, "number")) {
				t.Errorf("line %d: %s is %s (%s), schema says %v", i, k, jsonType(m[k]), m[k], ts)
			}
			if p.Format == "date-time" {
				var v string
				json.Unmarshal(m[k], &v)
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					t.Errorf("line %d: %s %q is not a date-time", i, k, v)
				}
			}
			if !slices.Contains(all, k) {
				all = append(all, k)
			}
		}
		if i == 1 {
			for _, k := range s.Then.Required {
				if string(m[k]) != "null" {
					t.Errorf("nil %s written as %s, want null", k, m[k])
				}
			}
		}
	}
	// The schema declares no property the encoder never writes.
	var props []string
	for k := range s.Properties {
		props = append(props, k)
	}
	sort.Strings(props)
	sort.Strings(all)
	if !reflect.DeepEqual(props, all) {
		t.Errorf("schema properties %v, encoder writes %v", props, all)
	}
}
