package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

// exerciseStream: PutStream stores what its writer writes, also when it
// is bigger than one upload part (S3 multipart), and a writer's error
// leaves the old object in place and is returned.
func exerciseStream(t *testing.T, s *Sink) {
	t.Helper()
	ctx := context.Background()
	key := ManifestKey("stream")
	var want bytes.Buffer
	write := func(w io.Writer) error {
		for i := 0; want.Len() < streamPartSize*2+12345; i++ {
			line := fmt.Appendf(nil, "{\"key\":\"provider=x/endpoint=y/dt=2026-11-22/job=stream/d%07d.example.00001.ndjson.gz\",\"records\":%d}\n", i, i%1000)
			want.Write(line)
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.PutStream(ctx, key, write, "application/json"); err != nil {
		t.Fatalf("PutStream of %d bytes: %v", want.Len(), err)
	}
	if got := mustGet(t, s, key); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("PutStream stored %d bytes, want %d (equal: false)", len(got), want.Len())
	}

	boom := errors.New("boom")
	err := s.PutStream(ctx, key, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), streamPartSize+1)) // one part may be uploaded already
		return boom
	}, "application/json")
	if !errors.Is(err, boom) {
		t.Fatalf("PutStream with a failing writer: %v, want boom", err)
	}
	if got := mustGet(t, s, key); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("a failed PutStream replaced the object (%d bytes)", len(got))
	}
}
