package dataforseo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linkharvest/linkharvest/providers"
)

// endpoint describes one live endpoint: its path and the task fields a
// job may set through Request.Params. target, limit, offset and
// search_after_token are not among them: the domain list and the pager
// own those.
type endpoint struct {
	name     string
	function string // the docs' "function" in data and path
	path     string
	paged    bool
	params   map[string]func(json.RawMessage) error
}

// Vendor limits (docs/vendors.md, "DataForSEO: limits").
const (
	maxLimit          = 1000  // rows per call
	maxOffset         = 20000 // largest offset; past it, search_after_token
	maxFilters        = 8     // conditions in filters / backlinks_filters
	maxOrderBy        = 3     // order_by rules
	maxCustomValue    = 1000  // custom_mode.value
	maxInternalList   = 1000  // internal_list_limit
	maxTagChars       = 255
	maxTasksPerPOST   = 100
	defaultLimit      = 100 // the vendor's default when limit is absent
	maxFilterNestings = 10  // groups within groups; the docs show one level
)

var (
	backlinksEP = &endpoint{
		name: "backlinks", function: "backlinks", path: "/v3/backlinks/backlinks/live", paged: true,
		params: map[string]func(json.RawMessage) error{
			"mode":                       checkEnum("as_is", "one_per_domain", "one_per_anchor"),
			"custom_mode":                checkCustomMode,
			"filters":                    checkFilters,
			"order_by":                   checkOrderBy,
			"backlinks_status_type":      checkEnum("all", "live", "lost"),
			"include_subdomains":         checkBool,
			"include_indirect_links":     checkBool,
			"exclude_internal_backlinks": checkBool,
			"rank_scale":                 checkEnum("one_thousand", "one_hundred"),
			"tag":                        checkTag,
		},
	}
	summaryEP = &endpoint{
		name: "summary", function: "summary", path: "/v3/backlinks/summary/live",
		params: map[string]func(json.RawMessage) error{
			"include_subdomains":         checkBool,
			"include_indirect_links":     checkBool,
			"exclude_internal_backlinks": checkBool,
			"internal_list_limit":        checkIntRange(1, maxInternalList),
			"backlinks_status_type":      checkEnum("all", "live", "lost"),
			"backlinks_filters":          checkFilters,
			"rank_scale":                 checkEnum("one_thousand", "one_hundred"),
			"tag":                        checkTag,
		},
	}
	// endpoints in the order Endpoints() lists them: the default first.
	endpoints = []*endpoint{backlinksEP, summaryEP}
)

// lookup finds an endpoint by name; "" is the default (backlinks).
func lookup(name string) (*endpoint, error) {
	if name == "" {
		return endpoints[0], nil
	}
	for _, e := range endpoints {
		if e.name == name {
			return e, nil
		}
	}
	names := make([]string, len(endpoints))
	for i, e := range endpoints {
		names[i] = e.name
	}
	return nil, fmt.Errorf("unknown endpoint %q (known: %s)", name, strings.Join(names, ", "))
}

// reserved are task fields the pipeline sets itself.
var reserved = map[string]string{
	"target":             "the target is the domain from the input list",
	"limit":              "limit is set by the pager (up to 1000 rows a call)",
	"offset":             "offset is set by the pager",
	"search_after_token": "search_after_token is set by the pager",
}

// paramError is an invalid or unknown option. The sandbox answers the
// first kind with 40501 and the second with 40506, as the vendor does.
type paramError struct {
	field   string
	unknown bool
	msg     string
}

func (e *paramError) Error() string { return e.msg }

// checkParams validates a job's options for an endpoint, keys in sorted
// order so the first error reported is always the same one.
func (e *endpoint) checkParams(params map[string]json.RawMessage) error {
	return providers.EachParam(params, e.checkParam)
}

func (e *endpoint) checkParam(k string, v json.RawMessage) error {
	check, ok := e.params[k]
	if !ok {
		if why, ok := reserved[k]; ok {
			return &paramError{field: k, msg: fmt.Sprintf("%s: option %q is not allowed: %s", e.name, k, why)}
		}
		known := make([]string, 0, len(e.params))
		for n := range e.params {
			known = append(known, n)
		}
		sort.Strings(known)
		return &paramError{field: k, unknown: true, msg: fmt.Sprintf("%s: unknown option %q (known: %s)", e.name, k, strings.Join(known, ", "))}
	}
	if err := check(v); err != nil {
		return &paramError{field: k, msg: fmt.Sprintf("%s: option %q: %v", e.name, k, err)}
	}
	return nil
}

// first returns the first non-space byte of a JSON value, 0 if none.
func first(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

func checkBool(v json.RawMessage) error {
	switch string(bytes.TrimSpace(v)) {
	case "true", "false":
		return nil
	}
	return errors.New("must be true or false")
}

func checkEnum(values ...string) func(json.RawMessage) error {
	return func(v json.RawMessage) error {
		var s string
		if first(v) != '"' || json.Unmarshal(v, &s) != nil || !slices.Contains(values, s) {
			return fmt.Errorf("must be one of %s", strings.Join(values, ", "))
		}
		return nil
	}
}

func checkTag(v json.RawMessage) error {
	var s string
	if first(v) != '"' || json.Unmarshal(v, &s) != nil {
		return errors.New("must be a string")
	}
	if utf8.RuneCountInString(s) > maxTagChars {
		return fmt.Errorf("must be at most %d characters", maxTagChars)
	}
	return nil
}

// intValue reads a JSON integer (not a string, not a fraction).
func intValue(v json.RawMessage) (int, bool) {
	s := string(bytes.TrimSpace(v))
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func checkIntRange(lo, hi int) func(json.RawMessage) error {
	return func(v json.RawMessage) error {
		n, ok := intValue(v)
		if !ok || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		return nil
	}
}

// customModeFields are the fields custom_mode groups by (the vendor's documented example, docs/vendors.md "DataForSEO: endpoints").
var customModeFields = []string{"anchor", "domain_from", "domain_from_country", "tld_from", "page_from_encoding",
	"page_from_language", "item_type", "page_from_status_code", "semantic_location"}

func checkCustomMode(v json.RawMessage) error {
	var m map[string]json.RawMessage
	if first(v) != '{' || json.Unmarshal(v, &m) != nil {
		return errors.New(`must be an object {"field": …, "value": 1..1000}`)
	}
	for k := range m {
		if k != "field" && k != "value" {
			return fmt.Errorf("unknown member %q (custom_mode takes field and value)", k)
		}
	}
	f, ok := m["field"]
	if !ok {
		return errors.New("field is required")
	}
	if err := checkEnum(customModeFields...)(f); err != nil {
		return fmt.Errorf("field %w", err)
	}
	val, ok := m["value"]
	if !ok {
		return errors.New("value is required")
	}
	if err := checkIntRange(1, maxCustomValue)(val); err != nil {
		return fmt.Errorf("value %w", err)
	}
	return nil
}

// filterOps are the operators the vendor documents for Backlinks API
// filters, plus has/has_not that its other APIs take on array fields.
var filterOps = []string{"=", "<>", "<", "<=", ">", ">=", "in", "not_in", "like", "not_like", "ilike", "not_ilike",
	"regex", "not_regex", "match", "not_match", "has", "has_not"}

// checkFilters accepts one condition ["field", "op", value] or a list of
// conditions and nested lists joined by "and"/"or", with at most 8
// conditions in all.
func checkFilters(v json.RawMessage) error {
	var f []any
	if first(v) != '[' || json.Unmarshal(v, &f) != nil {
		return errors.New(`must be an array, e.g. ["dofollow","=",true] or [["dofollow","=",true],"and",["page_from_rank",">",55]]`)
	}
	n, err := countConditions(f, 0)
	if err != nil {
		return err
	}
	if n > maxFilters {
		return fmt.Errorf("has %d conditions; the vendor takes at most %d", n, maxFilters)
	}
	return nil
}

func countConditions(f []any, depth int) (int, error) {
	if depth > maxFilterNestings {
		return 0, errors.New("nested too deeply")
	}
	if len(f) == 0 {
		return 0, errors.New("empty filter")
	}
	if field, ok := f[0].(string); ok { // a condition
		if len(f) != 3 {
			return 0, fmt.Errorf("condition %v: want [field, operator, value]", f)
		}
		op, ok := f[1].(string)
		if field == "" || !ok || !slices.Contains(filterOps, op) {
			return 0, fmt.Errorf("condition %v: want [field, operator, value] with an operator among %s", f, strings.Join(filterOps, " "))
		}
		if slices.Contains(seenFields, field) {
			if !slices.Contains(dateOps, op) {
				return 0, fmt.Errorf("condition %v: %s takes the operators %s", f, field, strings.Join(dateOps, " "))
			}
			if _, ok := parseSeen(f[2]); !ok {
				return 0, fmt.Errorf(`condition %v: want a date "YYYY-MM-DD hh:mm:ss +00:00" or "YYYY-MM-DD"`, f)
			}
		}
		return 1, nil
	}
	if len(f)%2 == 0 {
		return 0, errors.New(`conditions must be joined by "and" or "or", one between each two`)
	}
	n := 0
	for i, e := range f {
		if i%2 == 1 {
			s, ok := e.(string)
			if !ok || (!strings.EqualFold(s, "and") && !strings.EqualFold(s, "or")) {
				return 0, fmt.Errorf(`%v: conditions must be joined by "and" or "or"`, e)
			}
			continue
		}
		sub, ok := e.([]any)
		if !ok {
			return 0, fmt.Errorf("%v: want a condition [field, operator, value] or a group of them", e)
		}
		k, err := countConditions(sub, depth+1)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// seenFields are the rows' dates; a filter compares them with dateOps
// and a date (the sandbox applies these conditions).
var (
	seenFields = []string{"first_seen", "prev_seen", "last_seen"}
	dateOps    = []string{"=", "<>", "<", "<=", ">", ">="}
)

// parseSeen reads a filter's date, written as the vendor writes dates
// ("2025-03-01 14:05:00 +00:00", any offset) or as a day ("2025-03-01":
// its 00:00:00 UTC), as Unix seconds.
func parseSeen(v any) (int64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	for _, layout := range []string{"2006-01-02 15:04:05 -07:00", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), true
		}
	}
	return 0, false
}

var orderRule = regexp.MustCompile(`^[A-Za-z0-9_.]+,(asc|desc)$`)

// checkOrderBy catches the common mistake "rank desc" (the vendor wants
// "rank,desc").
func checkOrderBy(v json.RawMessage) error {
	var rules []string
	if first(v) != '[' || json.Unmarshal(v, &rules) != nil {
		return errors.New(`must be an array of "field,asc" or "field,desc" strings`)
	}
	if len(rules) == 0 || len(rules) > maxOrderBy {
		return fmt.Errorf("must hold 1 to %d rules", maxOrderBy)
	}
	for _, r := range rules {
		if !orderRule.MatchString(r) {
			return fmt.Errorf(`rule %q: write "field,asc" or "field,desc", e.g. "rank,desc"`, r)
		}
	}
	return nil
}
