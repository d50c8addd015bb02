package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// The JSON field readers below are lenient in the same ways for every
// vendor: fields whose type the vendors' encoders vary (a numeric title, a
// flag written 0/1 or "true", a count written as a string or as 2396.0)
// are read for what they say, and anything else is "absent" rather than
// an error, so that one odd row never fails a paid page.

// FirstByte returns the first non-space byte of a JSON value, 0 if none.
func FirstByte(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// DecodeObject reads a body that must be a JSON object into v; anything
// else is the vendor's bad body (retryable).
func DecodeObject(provider string, body []byte, v any) error {
	if FirstByte(body) != '{' {
		return BadBody(provider, errors.New("the body is not a JSON object"))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return BadBody(provider, err)
	}
	return nil
}

// JSONText reads a string field; a number (a numeric title, say) is kept
// as written; null, absent and other types are nil.
func JSONText(raw json.RawMessage) *string {
	switch c := FirstByte(raw); {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return &s
		}
	case c == '-' || c >= '0' && c <= '9':
		s := string(bytes.TrimSpace(raw))
		return &s
	}
	return nil
}

// JSONString is JSONText or "".
func JSONString(raw json.RawMessage) string {
	if s := JSONText(raw); s != nil {
		return *s
	}
	return ""
}

// JSONFlag reads a boolean written as true/false, 0/1 (also 1.0) or
// either as a string; anything else is nil.
func JSONFlag(raw json.RawMessage) *bool {
	v := string(bytes.TrimSpace(raw))
	if FirstByte(raw) == '"' {
		if json.Unmarshal(raw, &v) != nil {
			return nil
		}
		v = strings.TrimSpace(v)
	}
	switch strings.ToLower(v) {
	case "true", "1":
		return Bool(true)
	case "false", "0":
		return Bool(false)
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && (f == 0 || f == 1) {
		return Bool(f == 1) // 1.0 from a generic encoder
	}
	return nil
}

// JSONInt reads an integer written as a number or a numeric string, also
// as 2396.0 or 2.396e3 from a generic encoder.
func JSONInt(raw json.RawMessage) (int, bool) {
	v := strings.TrimSpace(string(raw))
	if FirstByte(raw) == '"' {
		if json.Unmarshal(raw, &v) != nil {
			return 0, false
		}
		v = strings.TrimSpace(v)
	}
	return Atoi(v)
}

// Atoi reads an integer, also written as 2396.0; beyond ±1e15 (far past
// any row count) it is refused rather than rounded.
func Atoi(v string) (int, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != float64(int(f)) || f > 1e15 || f < -1e15 {
		return 0, false
	}
	return int(f), true
}
