package sink

import "github.com/linkharvest/linkharvest/internal/jsonstr"

// The record encoder is hand-written (append-style, no reflection) because
// encoding every row is the workers' hottest loop after the vendor call:
// encoding/json spends most of a row's time in reflection, HTML escaping
// and per-value allocations, for a fixed, flat record whose shape is known
// here. The helpers below follow RFC 8259 and encoding/json's choices so the
// output is what json.Marshal would accept and produce, minus HTML escaping.

// appendString appends s as a JSON string (jsonstr.Append).
func appendString(dst []byte, s string) []byte { return jsonstr.Append(dst, s) }

// appendStringPtr appends *s, or null for nil.
func appendStringPtr(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

// appendBoolPtr appends *b, or null for nil.
func appendBoolPtr(dst []byte, b *bool) []byte {
	switch {
	case b == nil:
		return append(dst, "null"...)
	case *b:
		return append(dst, "true"...)
	default:
		return append(dst, "false"...)
	}
}
