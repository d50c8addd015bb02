package sink

import (
	"errors"
	"fmt"
)

// appendCompact validates the JSON document src and appends it to dst
// without insignificant whitespace: the same result as json.Compact, which
// it replaces because encoding/json's byte-at-a-time scanner state machine
// was most of EncodePage's time. Output is copied from src in spans between
// whitespace, so an already compact item costs one validation pass and one
// copy. On error dst is returned unchanged (truncated to its old length).
func appendCompact(dst, src []byte) ([]byte, error) {
	c := compactor{src: src, dst: dst}
	c.skipSpace()
	if err := c.value(0); err != nil {
		return dst, err
	}
	c.skipSpace()
	if c.i != len(src) {
		return dst, c.errorf("data after the top-level value")
	}
	c.flush()
	return c.dst, nil
}

// maxDepth bounds nesting, as encoding/json does (its limit is 10000).
const maxDepth = 10000

type compactor struct {
	src    []byte
	i      int // next byte to read
	copied int // src[copied:i] is not yet in dst
	dst    []byte
}

func (c *compactor) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", c.i, fmt.Sprintf(format, args...))
}

var errEOF = errors.New("unexpected end of JSON input")

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// skipSpace passes whitespace, copying the span before it to dst.
func (c *compactor) skipSpace() {
	if c.i < len(c.src) && isSpace(c.src[c.i]) {
		c.dst = append(c.dst, c.src[c.copied:c.i]...)
		for c.i < len(c.src) && isSpace(c.src[c.i]) {
			c.i++
		}
		c.copied = c.i
	}
}

func (c *compactor) flush() {
	c.dst = append(c.dst, c.src[c.copied:c.i]...)
	c.copied = c.i
}

func (c *compactor) value(depth int) error {
	if c.i >= len(c.src) {
		return errEOF
	}
	switch b := c.src[c.i]; {
	case b == '{':
		return c.container(depth+1, true)
	case b == '[':
		return c.container(depth+1, false)
	case b == '"':
		return c.str()
	case b == '-' || b >= '0' && b <= '9':
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	default:
		return c.errorf("invalid character %q looking for a value", b)
	}
}

func (c *compactor) literal(lit string) error {
	if len(c.src)-c.i < len(lit) || string(c.src[c.i:c.i+len(lit)]) != lit {
		return c.errorf("invalid literal, want %s", lit)
	}
	c.i += len(lit)
	return nil
}

// container reads an object (obj) or an array: its members up to the
// closing byte, each followed by a ',' or the end.
func (c *compactor) container(depth int, obj bool) error {
	if depth > maxDepth {
		return c.errorf("nested too deeply")
	}
	end, after := byte(']'), "an array element"
	if obj {
		end, after = '}', "an object value"
	}
	c.i++ // { or [
	c.skipSpace()
	if c.i < len(c.src) && c.src[c.i] == end {
		c.i++
		return nil
	}
	for {
		if obj {
			if err := c.key(); err != nil {
				return err
			}
		}
		if err := c.value(depth); err != nil {
			return err
		}
		c.skipSpace()
		if c.i >= len(c.src) {
			return errEOF
		}
		switch c.src[c.i] {
		case ',':
			c.i++
			c.skipSpace()
		case end:
			c.i++
			return nil
		default:
			return c.errorf("invalid character %q after %s", c.src[c.i], after)
		}
	}
}

// key reads an object key and its colon.
func (c *compactor) key() error {
	if c.i >= len(c.src) {
		return errEOF
	}
	if c.src[c.i] != '"' {
		return c.errorf("invalid character %q looking for an object key", c.src[c.i])
	}
	if err := c.str(); err != nil {
		return err
	}
	c.skipSpace()
	if c.i >= len(c.src) {
		return errEOF
	}
	if c.src[c.i] != ':' {
		return c.errorf("invalid character %q after an object key", c.src[c.i])
	}
	c.i++
	c.skipSpace()
	return nil
}

// plain[b] is true for bytes that may stand for themselves in a JSON
// string (not '"', '\\' or a control character). Bytes >= 0x80 pass: the
// caller has made the document valid UTF-8 already.
var plain = func() (t [256]bool) {
	for b := 0x20; b < 256; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

func (c *compactor) str() error {
	src := c.src
	i := c.i + 1 // opening quote
	for {
		for i < len(src) && plain[src[i]] {
			i++
		}
		if i >= len(src) {
			c.i = i
			return errEOF
		}
		switch src[i] {
		case '"':
			c.i = i + 1
			return nil
		case '\\':
			if i+1 >= len(src) {
				c.i = i
				return errEOF
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) {
					c.i = i
					return errEOF
				}
				for _, h := range src[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						c.i = i
						return c.errorf("invalid \\u escape in string")
					}
				}
				i += 6
			default:
				c.i = i
				return c.errorf("invalid escape \\%c in string", src[i+1])
			}
		default:
			c.i = i
			return c.errorf("invalid control character %#x in string", src[i])
		}
	}
}

func digit(b byte) bool { return b >= '0' && b <= '9' }

// number passes -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *compactor) number() error {
	src, i := c.src, c.i
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && digit(src[i]):
		for i < len(src) && digit(src[i]) {
			i++
		}
	default:
		c.i = i
		return c.errorf("invalid number")
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) || !digit(src[i]) {
			c.i = i
			return c.errorf("invalid number: no digit after the decimal point")
		}
		for i < len(src) && digit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || !digit(src[i]) {
			c.i = i
			return c.errorf("invalid number: no digit in the exponent")
		}
		for i < len(src) && digit(src[i]) {
			i++
		}
	}
	c.i = i
	return nil
}
