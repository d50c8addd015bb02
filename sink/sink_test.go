package sink

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_REGION", "eu-central-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tests := []struct {
		url, want, err string
	}{
		{url: "s3://bucket/some/prefix/", want: "s3://bucket/some/prefix"},
		{url: "s3://bucket", want: "s3://bucket"},
		{url: "S3://bucket/p", want: "s3://bucket/p"},
		{url: "file://" + dir + "/out", want: "file://" + dir + "/out"},
		{url: "file://localhost" + dir, want: "file://" + dir},
		{url: dir + "/plain", want: "file://" + dir + "/plain"},
		{url: "", err: "no sink URL"},
		{url: "s3:///prefix", err: "without a bucket"},
		{url: "s3://user:hunter2@bucket/p", err: "must not hold credentials"},
		{url: "s3://bucket/a/../b", err: "invalid key"},
		{url: "s3://bucket/p?x=1", err: "query"},
		{url: "file://relative/dir", err: "want file:///"},
		{url: "gs://bucket/p", err: "unsupported scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := Open(context.Background(), tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.want {
				t.Errorf("String() = %q, want %q", s.String(), tt.want)
			}
		})
	}
	// A relative directory is made absolute.
	t.Chdir(dir)
	s, err := Open(context.Background(), "out")
	if err != nil || s.String() != "file://"+filepath.Join(dir, "out") {
		t.Fatalf("relative dir: %v %v", s, err)
	}
}

func TestOpenS3Settings(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-central-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tests := []struct {
		env map[string]string
		err string
	}{
		{env: map[string]string{"S3_FORCE_PATH_STYLE": "true"}},
		{env: map[string]string{"S3_FORCE_PATH_STYLE": "yes please"}, err: "S3_FORCE_PATH_STYLE"},
		{env: map[string]string{"S3_SSE": "AES256"}},
		{env: map[string]string{"S3_SSE": "aws:kms", "S3_SSE_KMS_KEY_ID": "arn:aws:kms:eu-central-1:1:key/k"}},
		{env: map[string]string{"S3_SSE": "aes256"}, err: "S3_SSE"},
		{env: map[string]string{"S3_SSE_KMS_KEY_ID": "k"}, err: `S3_SSE_KMS_KEY_ID="k": needs`},
	}
	for _, tt := range tests {
		for _, k := range []string{"S3_FORCE_PATH_STYLE", "S3_SSE", "S3_SSE_KMS_KEY_ID"} {
			t.Setenv(k, tt.env[k])
		}
		s, err := Open(context.Background(), "s3://bucket/p")
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%v: err %v, want %q", tt.env, err, tt.err)
			continue
		}
		if err == nil {
			b := s.b.(*s3Sink)
			if string(b.sse) != tt.env["S3_SSE"] || b.kmsKeyID != tt.env["S3_SSE_KMS_KEY_ID"] {
				t.Errorf("%v: sse %q key %q", tt.env, b.sse, b.kmsKeyID)
			}
		}
	}
}

// exercise runs the same put/get/list checks against any sink.
func exercise(t *testing.T, s *Sink) {
	t.Helper()
	ctx := context.Background()
	page, err := EncodePage(benchRecords(3))
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][]byte{
		PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "a.example", 1): page,
		PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "a.example", 2): []byte("two"),
		PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "b.example", 1): []byte("b"),
		PageKey("xovi", "backlinks", "2026-03-04", "J1", "a.example", 1):       []byte("xovi"),
		ManifestKey("J1"): []byte(`{"job_id":"J1"}`),
		SuccessKey("J1"):  nil,
		"a-b":             []byte("sorts before a/b"),
		"a/b":             []byte("sorts after a-b"),
	}
	for k, v := range objs {
		ct := "application/x-ndjson"
		if !strings.HasSuffix(k, ".gz") {
			ct = "application/json"
		}
		if err := s.Put(ctx, k, v, ct); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	for k, v := range objs {
		got, err := s.Get(ctx, k)
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("get %s = %q, %v; want %q", k, got, err, v)
		}
	}
	recs, err := DecodePage(mustGet(t, s, PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "a.example", 1)))
	if err != nil || len(recs) != 3 {
		t.Errorf("stored page decodes to %d records, %v", len(recs), err)
	}

	// Overwrite: a retried page replaces its object.
	k := PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "a.example", 2)
	if err := s.Put(ctx, k, []byte("two again"), "application/x-ndjson"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, k); string(got) != "two again" {
		t.Errorf("after overwrite: %q", got)
	}
	objs[k] = []byte("two again")

	if _, err := s.Get(ctx, "jobs/none/manifest.json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a missing key: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "/abs", "a/../../etc/passwd", "../x", "a//b", "a/", "./a", `a\b`, "d/.tmp-x"} {
		if err := s.Put(ctx, bad, []byte("x"), ""); err == nil {
			t.Errorf("put %q: no error", bad)
		}
		if _, err := s.Get(ctx, bad); err == nil {
			t.Errorf("get %q: no error", bad)
		}
	}

	listTests := []struct {
		prefix string
		want   []string
	}{
		{"", sortedKeys(objs, "")},
		{"provider=dataforseo/", sortedKeys(objs, "provider=dataforseo/")},
		{"provider=dataforseo/endpoint=backlinks/dt=2026-03-04/job=J1/a.", sortedKeys(objs, "provider=dataforseo/endpoint=backlinks/dt=2026-03-04/job=J1/a.")},
		{"jobs/J1/", []string{"jobs/J1/_SUCCESS", "jobs/J1/manifest.json"}},
		{"jobs/J1/_S", []string{"jobs/J1/_SUCCESS"}},
		{"prov", sortedKeys(objs, "prov")},
		{"a", []string{"a-b", "a/b"}},
		{"nothing/here/", nil},
		{"nothing", nil},
	}
	for _, tt := range listTests {
		got, err := s.List(ctx, tt.prefix)
		if err != nil {
			t.Fatalf("list %q: %v", tt.prefix, err)
		}
		var keys []string
		for _, o := range got {
			keys = append(keys, o.Key)
			if o.Size != int64(len(objs[o.Key])) {
				t.Errorf("list: %s size %d, want %d", o.Key, o.Size, len(objs[o.Key]))
			}
			if time.Since(o.LastModified) > time.Hour || o.LastModified.After(time.Now().Add(time.Minute)) {
				t.Errorf("list: %s last modified %v", o.Key, o.LastModified)
			}
		}
		if !reflect.DeepEqual(keys, tt.want) {
			t.Errorf("list %q:\n got %q\nwant %q", tt.prefix, keys, tt.want)
		}
	}
}

func sortedKeys(m map[string][]byte, prefix string) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	return keys
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func mustGet(t *testing.T, s *Sink, key string) []byte {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFileSink(t *testing.T) {
	t.Parallel() // its own directory; no environment
	dir := t.TempDir()
	s, err := Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s)
	exerciseStream(t, s)
	// Files land where the keys say, readable by others (the warehouse loader).
	st, err := os.Stat(filepath.Join(dir, "jobs", "J1", "manifest.json"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("manifest file: %v %v", st, err)
	}
}

// TestFileSinkAtomic overwrites an object while readers read it: each read
// sees one whole version, never a mix or a partial file, and no temporary
// file is listed or left behind.
func TestFileSinkAtomic(t *testing.T) {
	t.Parallel() // its own directory; no environment
	dir := t.TempDir()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	versions := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<20+7)}
	const key = "p/obj.ndjson.gz"
	if err := s.Put(ctx, key, versions[0], ""); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad error
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Get(ctx, key)
				if err == nil && !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					err = errors.New("read a torn object")
				}
				if err == nil {
					objs, lerr := s.List(ctx, "p/")
					if lerr != nil || len(objs) != 1 || objs[0].Key != key {
						err = errors.New("list shows other than the one object")
					}
				}
				if err != nil {
					mu.Lock()
					bad = err
					mu.Unlock()
					return
				}
			}
		})
	}
	for i := range 60 {
		if err := s.Put(ctx, key, versions[i%2], ""); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "p"))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the object", len(entries))
	}
}

func TestFileSinkCanceled(t *testing.T) {
	t.Parallel() // its own directory; no environment
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "k", []byte("x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a canceled context: %v", err)
	}
}

func TestS3Sink(t *testing.T) {
	m := testenv.MinIO(t)
	m.Setenv(t)
	s, err := Open(context.Background(), m.SinkURL("out/run"))
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "s3://"+m.Bucket+"/out/run" {
		t.Errorf("String() = %q", s.String())
	}
	exercise(t, s)
	if st, err := Open(context.Background(), m.SinkURL("out/stream")); err != nil {
		t.Fatal(err)
	} else {
		exerciseStream(t, st)
	}

	// Objects sit under the prefix (path style: the bucket is in the path,
	// which is the only way MinIO on 127.0.0.1 answers) with their types.
	ctx := context.Background()
	c := m.Client()
	key := PageKey("dataforseo", "backlinks", "2026-03-04", "J1", "a.example", 1)
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("out/run/" + key)})
	if err != nil {
		t.Fatalf("head of the data object under the prefix: %v", err)
	}
	if aws.ToString(h.ContentType) != "application/x-ndjson" || aws.ToString(h.ContentEncoding) != "gzip" {
		t.Errorf("data object: content-type %q, content-encoding %q", aws.ToString(h.ContentType), aws.ToString(h.ContentEncoding))
	}
	h, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("out/run/" + ManifestKey("J1"))})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(h.ContentType) != "application/json" || h.ContentEncoding != nil && *h.ContentEncoding != "" {
		t.Errorf("manifest: content-type %q, content-encoding %q", aws.ToString(h.ContentType), aws.ToString(h.ContentEncoding))
	}

	// A sink at the bucket's root sees everything, prefix included.
	root, err := Open(ctx, m.SinkURL(""))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := root.List(ctx, "out/run/jobs/")
	if err != nil || len(objs) != 2 {
		t.Errorf("root list: %v %v", objs, err)
	}
}

// TestS3SinkOutage: with MinIO down, Put fails with an error that wraps the
// network cause; once it is back, the same Put succeeds.
func TestS3SinkOutage(t *testing.T) {
	m := testenv.OwnMinIO(t)
	m.Setenv(t)
	ctx := context.Background()
	s, err := Open(ctx, m.SinkURL("p"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", []byte("1"), "text/plain"); err != nil {
		t.Fatal(err)
	}
	m.Stop(t)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = s.Put(tctx, "k", []byte("2"), "text/plain")
	if err == nil {
		t.Fatal("put succeeded with MinIO down")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error does not wrap the cause: %v", err)
	}
	if !strings.Contains(err.Error(), "sink: putting k") || strings.Contains(err.Error(), m.SecretKey) {
		t.Errorf("error message: %v", err)
	}
	m.Start(t)
	if err := s.Put(ctx, "k", []byte("2"), "text/plain"); err != nil {
		t.Fatalf("put after MinIO came back: %v", err)
	}
	if got := mustGet(t, s, "k"); string(got) != "2" {
		t.Errorf("got %q", got)
	}
}
