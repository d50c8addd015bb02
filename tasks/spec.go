package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/linkharvest/linkharvest/providers/registry"
)

// Spec is what a job asks for; it is stored once with the job, not in
// every task.
type Spec struct {
	Providers []string `json:"providers"`
	// Endpoints per provider.
	Endpoints map[string][]string `json:"endpoints"`
	MaxRows   int                 `json:"max_rows,omitempty"`
	// MaxRetry is the failures a page may have before it is archived and
	// listed as failed (nil: MaxRetry).
	MaxRetry *int `json:"max_retry,omitempty"`
	// Params per provider and endpoint: the vendor's own request options.
	Params map[string]map[string]map[string]json.RawMessage `json:"params,omitempty"`
	// Refresh, in a refresh job, names its base job (refresh.go).
	Refresh *Refresh `json:"refresh,omitempty"`
}

func (s *Spec) maxRetry() int {
	if s.MaxRetry != nil {
		return *s.MaxRetry
	}
	return MaxRetry
}

func (s *Spec) params(provider, endpoint string) map[string]json.RawMessage {
	if s.Params == nil {
		return nil
	}
	return s.Params[provider][endpoint]
}

// SpecRequest is what a submitter asks a job for, as given (the command
// line's --provider, --endpoint, --param, --max-rows, --max-retries).
type SpecRequest struct {
	Providers, Endpoints []string
	// Params are provider.endpoint.key=value; value is JSON or a string.
	Params   []string
	MaxRows  int
	MaxRetry int
}

// NewSpec checks providers, endpoints and options against what each
// vendor documents (its descriptor), before anything is enqueued.
func NewSpec(o SpecRequest) (Spec, error) {
	spec := Spec{Endpoints: map[string][]string{}, MaxRows: o.MaxRows}
	if o.MaxRetry != MaxRetry {
		spec.MaxRetry = &o.MaxRetry
	}
	if len(o.Providers) == 0 {
		return spec, errors.New("--provider: name at least one provider")
	}
	if len(o.Endpoints) == 0 {
		return spec, errors.New("--endpoint: name at least one endpoint")
	}
	used := map[string]bool{}
	for _, p := range o.Providers {
		c, err := registry.Describe(p)
		if err != nil {
			return spec, err
		}
		if _, dup := spec.Endpoints[p]; dup {
			continue
		}
		spec.Providers = append(spec.Providers, p)
		known := map[string]bool{}
		for _, e := range c.Endpoints {
			known[e] = true
		}
		var eps []string
		for _, e := range o.Endpoints {
			if known[e] {
				eps = append(eps, e)
				used[e] = true
			}
		}
		if len(eps) == 0 {
			return spec, fmt.Errorf("provider %s has none of the endpoints %s (it has: %s)", p, strings.Join(o.Endpoints, ","), strings.Join(c.Endpoints, ","))
		}
		spec.Endpoints[p] = eps
	}
	for _, e := range o.Endpoints {
		if !used[e] {
			return spec, fmt.Errorf("endpoint %q: no chosen provider has it", e)
		}
	}
	for _, kv := range o.Params {
		k, v, ok := strings.Cut(kv, "=")
		parts := strings.SplitN(k, ".", 3)
		if !ok || len(parts) != 3 || parts[2] == "" {
			return spec, fmt.Errorf("--param %q: want provider.endpoint.key=value", kv)
		}
		p, e, key := parts[0], parts[1], parts[2]
		if !slices.Contains(spec.Endpoints[p], e) {
			return spec, fmt.Errorf("--param %q: %s.%s is not part of this job", kv, p, e)
		}
		raw := json.RawMessage(v)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(v)
		}
		if spec.Params == nil {
			spec.Params = map[string]map[string]map[string]json.RawMessage{}
		}
		if spec.Params[p] == nil {
			spec.Params[p] = map[string]map[string]json.RawMessage{}
		}
		if spec.Params[p][e] == nil {
			spec.Params[p][e] = map[string]json.RawMessage{}
		}
		spec.Params[p][e][key] = raw
	}
	// Every chosen endpoint is checked, with or without options: some
	// require one (a histogram's from date).
	for _, p := range spec.Providers {
		c, _ := registry.Describe(p)
		for _, e := range spec.Endpoints[p] {
			if err := c.CheckParams(e, spec.Params[p][e]); err != nil {
				return spec, fmt.Errorf("%s.%s: %w", p, e, err)
			}
		}
	}
	return spec, nil
}
