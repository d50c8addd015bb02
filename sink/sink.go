// Package sink stores linkharvest's output objects: the gzip NDJSON data
// objects of every fetched page, each job's manifest and its _SUCCESS
// marker, in S3 (or any S3-compatible store such as MinIO) or a local
// directory. It also owns the output format: the record encoder, the key
// layout and the JSON Schema of a record (see docs/contract.md, "Output").
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/internal/redact"
)

// ErrNotFound is returned (wrapped) by Get for a key that holds no object.
var ErrNotFound = errors.New("sink: no such object")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string // relative to the sink
	Size         int64
	LastModified time.Time
}

// Sink is where output objects go. Keys are relative to the sink's root
// (the S3 prefix or the directory). It is safe for concurrent use.
type Sink struct {
	b   backend
	url string // for String: no credentials
}

type backend interface {
	put(ctx context.Context, key string, body []byte, contentType string) error
	putStream(ctx context.Context, key string, r io.Reader, contentType string) error
	get(ctx context.Context, key string) ([]byte, error)
	list(ctx context.Context, prefix string) ([]ObjectInfo, error)
	delete(ctx context.Context, key string) error
	check(ctx context.Context) error
}

// Check proves the sink can be reached and written to, cheaply: the file
// sink writes and removes a temporary file in its directory; the S3 sink
// asks for the bucket (HeadBucket: it exists and these credentials may
// read it). A worker checks at start, and /healthz on every probe.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.b.check(ctx); err != nil {
		return fmt.Errorf("sink %s: %w", s.url, err)
	}
	return nil
}

// Open opens a sink: "s3://bucket/prefix", "file:///abs/dir", or a plain
// directory path (created if missing).
//
// S3 settings come from the AWS SDK's default chain (AWS_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL_S3
// for MinIO and other S3-compatible stores, ...) and, for Open, from
// S3OptionsFromEnv over the process environment. Programs read their
// configuration once and call OpenWith; Open is for tools and tests.
func Open(ctx context.Context, rawURL string) (*Sink, error) {
	opts, err := S3OptionsFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return OpenWith(ctx, rawURL, opts)
}

// OpenWith is Open with the S3 options given.
func OpenWith(ctx context.Context, rawURL string, opts S3Options) (*Sink, error) {
	if rawURL == "" {
		return nil, errors.New("sink: no sink URL")
	}
	scheme, _, hasScheme := strings.Cut(rawURL, "://")
	if !hasScheme {
		return openDir(rawURL)
	}
	switch strings.ToLower(scheme) {
	case "s3":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sink: bad URL: %w", redact.Error(err, rawURL))
		}
		if u.User != nil {
			// Never echo the URL: it holds a secret.
			return nil, errors.New("sink: s3 URL must not hold credentials; use the AWS credential chain")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("sink: s3 URL %q: query and fragment are not supported", rawURL)
		}
		return openS3(ctx, u.Host, strings.Trim(u.Path, "/"), opts)
	case "file":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sink: bad URL: %w", redact.Error(err, rawURL))
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("sink: file URL %q: want file:///absolute/dir", redact.URL(rawURL))
		}
		if !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("sink: file URL %q: path must be absolute", redact.URL(rawURL))
		}
		return openDir(u.Path)
	default:
		return nil, fmt.Errorf("sink: unsupported scheme %q (want s3://bucket/prefix, file:///dir or a directory)", scheme)
	}
}

// String is the sink's URL, without credentials.
func (s *Sink) String() string { return s.url }

// Put stores body under key, replacing any object there. A reader never
// sees a partial object: the file sink writes a temporary file and renames
// it, S3 objects appear whole. Errors wrap their cause (an S3 outage's
// network error, for one); callers retry.
func (s *Sink) Put(ctx context.Context, key string, body []byte, contentType string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.b.put(ctx, key, body, contentType); err != nil {
		return fmt.Errorf("sink: putting %s: %w", key, err)
	}
	return nil
}

// PutStream stores under key what write writes, without holding it in
// memory: for objects too big for Put, such as the manifest of a job of
// millions of domains. S3 receives it as a multipart upload, the file sink
// as a temporary file renamed at the end; either way a reader never sees a
// partial object, and an error from write aborts the upload and keeps the
// old object.
func (s *Sink) PutStream(ctx context.Context, key string, write func(w io.Writer) error, contentType string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil: the reader sees EOF
		done <- err
	}()
	err := s.b.putStream(ctx, key, pr, contentType)
	pr.CloseWithError(errors.New("sink: upload ended")) // unblock write if the upload stopped reading
	if werr := <-done; werr != nil {
		return fmt.Errorf("sink: writing %s: %w", key, werr)
	}
	if err != nil {
		return fmt.Errorf("sink: putting %s: %w", key, err)
	}
	return nil
}

// Get returns the object stored under key; errors.Is(err, ErrNotFound)
// when there is none.
func (s *Sink) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := s.b.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("sink: getting %s: %w", key, err)
	}
	return b, nil
}

// Delete removes the object under key; a key that holds none is not an
// error (a retried delete must succeed).
func (s *Sink) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.b.delete(ctx, key); err != nil {
		return fmt.Errorf("sink: deleting %s: %w", key, err)
	}
	return nil
}

// List returns every object whose key starts with prefix ("" for all),
// sorted by key.
func (s *Sink) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	objs, err := s.b.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("sink: listing %q: %w", prefix, err)
	}
	return objs, nil
}
