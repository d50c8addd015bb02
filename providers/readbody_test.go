package providers

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 1000)
	cases := []struct {
		name      string
		r         io.Reader
		size, max int64
		want      string
		class     Class // zero: no error
		code      string
	}{
		{"declared length", strings.NewReader(body), 1000, 4096, body, 0, ""},
		{"unknown length", strings.NewReader(body), -1, 4096, body, 0, ""},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(body)), 1000, 4096, body, 0, ""},
		{"longer than declared", strings.NewReader(body), 10, 4096, body, 0, ""},
		{"shorter than declared", strings.NewReader(body), 2000, 4096, body, 0, ""},
		{"empty", strings.NewReader(""), 0, 4096, "", 0, ""},
		{"exactly the cap", strings.NewReader(body), 1000, 1000, body, 0, ""},
		{"over the cap, declared", strings.NewReader(body), 1000, 999, "", Fatal, "body too large"},
		{"over the cap, undeclared", strings.NewReader(body), -1, 999, "", Fatal, "body too large"},
		{"over the cap, declared short", strings.NewReader(body), 10, 999, "", Fatal, "body too large"},
		{"declared over the cap", strings.NewReader(body), 5000, 999, "", Fatal, "body too large"},
		{"cut off", io.MultiReader(strings.NewReader(body[:500]), iotest.ErrReader(io.ErrUnexpectedEOF)), 1000, 4096, "", Retryable, "transport"},
		{"refused by the reader", io.MultiReader(strings.NewReader(body[:500]), iotest.ErrReader(&Error{Provider: "test", Class: Fatal, Code: "body too large"})), -1, 4096, "", Fatal, "body too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadBody("test", c.r, c.size, c.max)
			if c.class == 0 {
				if err != nil || string(got) != c.want {
					t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(c.want))
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Class != c.class || pe.Code != c.code {
				t.Fatalf("err = %v, want class %v code %q", err, c.class, c.code)
			}
		})
	}
}

// A body of declared length is read into one buffer: no growth, no copy.
func TestReadBodyDeclaredOneAllocation(t *testing.T) {
	body := bytes.Repeat([]byte("y"), 1<<20)
	r := bytes.NewReader(body)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(body)
		if b, err := ReadBody("test", r, int64(len(body)), 0); err != nil || len(b) != len(body) {
			t.Fatalf("ReadBody: %d bytes, %v", len(b), err)
		}
	})
	if allocs > 2 { // the buffer, and the LimitReader
		t.Errorf("%.0f allocations per read of a declared 1 MB body, want at most 2", allocs)
	}
}
