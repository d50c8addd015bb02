package sink

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestCheck: Check passes on a sink that takes writes and fails on one
// that does not, leaving nothing behind.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check of a writable directory: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Check left %d files behind", len(left))
	}
	// The directory gone and a file in its place: no write can succeed.
	os.RemoveAll(dir)
	os.WriteFile(dir, nil, 0o644)
	if err := s.Check(ctx); err == nil {
		t.Error("Check passed on a directory that is a file")
	}

	m := testenv.MinIO(t)
	m.Setenv(t)
	s, err = Open(ctx, m.SinkURL("check"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check of the test bucket: %v", err)
	}
	s, err = Open(ctx, "s3://no-such-bucket-"+m.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err == nil {
		t.Error("Check passed on a bucket that does not exist")
	}
}
