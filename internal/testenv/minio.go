package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// S3 is a bucket on a MinIO, with what a client needs to reach it.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string

	srv *minioServer // set for OwnMinIO only: Stop and Start act on it
}

// SinkURL is the sink URL of a prefix in the bucket: s3://bucket/prefix.
func (s *S3) SinkURL(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + prefix
}

// Env is the environment a child process needs to reach the bucket through
// the AWS SDK's default chain (as KEY=VALUE). It also blanks the variables
// of a developer's own AWS setup that would otherwise leak in (a session
// token or profile would break MinIO's signature check) and turns off the
// EC2 metadata lookup, which only adds seconds of timeouts off EC2.
func (s *S3) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"S3_FORCE_PATH_STYLE=true",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env for this test's own process (t.Setenv: not in parallel tests).
func (s *S3) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Stop stops the MinIO of an OwnMinIO (SIGTERM), as an outage would look.
func (s *S3) Stop(t testing.TB) {
	t.Helper()
	if s.srv == nil {
		t.Fatal("testenv: Stop on a shared MinIO; use OwnMinIO for tests that stop it")
	}
	if err := s.srv.stop(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Start starts a stopped OwnMinIO again on the same port and data directory.
func (s *S3) Start(t testing.TB) {
	t.Helper()
	if s.srv == nil {
		t.Fatal("testenv: Start on a shared MinIO; use OwnMinIO for tests that stop it")
	}
	if err := s.srv.restart(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Client is an S3 client for the bucket's MinIO (path style, static keys).
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

const minioRegion = "us-east-1"

// minioServer is one MinIO, as a child process or a container.
type minioServer struct {
	mu        sync.Mutex
	endpoint  string
	user      string
	password  string
	port      int
	console   int
	dir       string
	bin       string
	proc      *proc // nil while stopped
	container testcontainers.Container
}

var shared struct {
	mu  sync.Mutex
	srv *minioServer
	err error  // a failed start, remembered so later tests do not wait again
	why string // why MinIO is unavailable on this machine (skip)
}

// MinIO gives the test a fresh bucket on the MinIO shared by the whole test
// binary, started on first use: a MinIO takes seconds to start, a bucket
// milliseconds.
func MinIO(t testing.TB) *S3 {
	t.Helper()
	shared.mu.Lock()
	if shared.srv == nil && shared.err == nil && shared.why == "" {
		shared.srv, shared.why, shared.err = newMinIO(sharedDir)
	}
	srv, why, err := shared.srv, shared.why, shared.err
	shared.mu.Unlock()
	if why != "" {
		unavailable(t, "%s", why)
	}
	if err != nil {
		t.Fatalf("testenv: the shared MinIO: %v", err)
	}
	return srv.bucket(t)
}

// OwnMinIO starts a MinIO for this test alone (for tests that stop and
// start it) and gives a fresh bucket on it. Cleanup stops it.
func OwnMinIO(t testing.TB) *S3 {
	t.Helper()
	dir := t.TempDir()
	srv, why, err := newMinIO(func() (string, error) { return dir, nil })
	if why != "" {
		unavailable(t, "%s", why)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(srv.close)
	s := srv.bucket(t)
	s.srv = srv
	return s
}

// stopShared stops the shared MinIO and removes its data (Main calls it).
func stopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.close()
		if shared.srv.dir != "" {
			os.RemoveAll(shared.srv.dir)
		}
		shared.srv = nil
	}
}

// newMinIO starts a MinIO in a container or from the local binary. why is
// set when neither is available here (skip); err when starting failed.
func newMinIO(mkdir func() (string, error)) (srv *minioServer, why string, err error) {
	user, password := "testenv", randomHex(16)
	if useDocker() {
		srv, err := dockerMinIO(user, password)
		if err != nil {
			return nil, fmt.Sprintf("starting a minio container: %v", err), nil
		}
		return srv, "", nil
	}
	bin, err := MinIOBinary()
	if err != nil {
		return nil, fmt.Sprintf("no Docker engine (%s) and %v", docker.why, err), nil
	}
	dir, err := mkdir()
	if err != nil {
		return nil, "", err
	}
	srv = &minioServer{user: user, password: password, dir: dir, bin: bin}
	for range 3 {
		if srv.port, err = freePort(); err != nil {
			return nil, "", err
		}
		if srv.console, err = freePort(); err != nil {
			return nil, "", err
		}
		if err = srv.start(); err == nil || !addrInUse(err.Error()) {
			break
		}
	}
	if err != nil {
		return nil, "", err
	}
	srv.endpoint = "http://127.0.0.1:" + strconv.Itoa(srv.port)
	return srv, "", nil
}

// MinIOBinary finds minio: $LINKHARVEST_MINIO, PATH, then $(go env
// GOPATH)/bin. The bench programs start theirs from the same place.
func MinIOBinary() (string, error) {
	if b := os.Getenv("LINKHARVEST_MINIO"); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath("minio"); err == nil {
		return b, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			b := filepath.Join(gp, "bin", "minio")
			if st, err := os.Stat(b); err == nil && !st.IsDir() {
				return b, nil
			}
		}
	}
	return "", errors.New("no minio binary in PATH or $(go env GOPATH)/bin (make deps installs it)")
}

func (m *minioServer) start() error {
	addr := "127.0.0.1:" + strconv.Itoa(m.port)
	args := []string{"server", m.dir, "--address", addr, "--console-address", "127.0.0.1:" + strconv.Itoa(m.console), "--quiet"}
	env := []string{
		"MINIO_ROOT_USER=" + m.user,
		"MINIO_ROOT_PASSWORD=" + m.password,
		"MINIO_UPDATE=off",
		"MINIO_BROWSER=off", // the console is of no use to tests and costs startup time
	}
	p, err := startProc("minio", m.bin, args, env)
	if err != nil {
		return err
	}
	live := "http://" + addr + "/minio/health/live"
	if err := p.waitReady(60*time.Second, func() error { return httpOK(live) }); err != nil {
		p.kill()
		return err
	}
	m.proc = p
	return nil
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

func httpOK(url string) error {
	resp, err := healthClient.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (m *minioServer) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.container != nil {
		timeout := 10 * time.Second
		return m.container.Stop(context.Background(), &timeout)
	}
	if m.proc != nil {
		m.proc.stop(10 * time.Second)
		m.proc = nil
	}
	return nil
}

func (m *minioServer) restart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.container != nil {
		if err := m.container.Start(context.Background()); err != nil {
			return fmt.Errorf("starting the minio container again: %w", err)
		}
		return waitFor(60*time.Second, func() error { return httpOK(m.endpoint + "/minio/health/live") })
	}
	if m.proc != nil {
		return nil
	}
	if err := m.start(); err != nil {
		return fmt.Errorf("starting minio again on %s: %w", m.endpoint, err)
	}
	return nil
}

// close ends the server for good.
func (m *minioServer) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.container != nil {
		_ = testcontainers.TerminateContainer(m.container)
		m.container = nil
	}
	if m.proc != nil {
		m.proc.kill() // test data: nothing to flush
		m.proc = nil
	}
}

// bucket creates a fresh bucket named after the test.
func (m *minioServer) bucket(t testing.TB) *S3 {
	t.Helper()
	s := &S3{Endpoint: m.endpoint, Region: minioRegion, AccessKey: m.user, SecretKey: m.password, Bucket: bucketName(t.Name())}
	c := s.Client()
	// The live probe answers before MinIO has finished initialising its
	// drives; CreateBucket can fail for a moment after it.
	err := waitFor(20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
		return err
	})
	if err != nil {
		t.Fatalf("testenv: creating bucket %s: %v", s.Bucket, err)
	}
	return s
}

// bucketName derives a valid, unique S3 bucket name (3-63 of [a-z0-9-],
// starting and ending with a letter or digit) from a test name.
func bucketName(test string) string {
	var b strings.Builder
	dash := true // no leading dash, no runs of dashes
	for _, r := range strings.ToLower(test) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "test"
	}
	return name + "-" + randomHex(6)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sharedDir makes the shared MinIO's data directory. The test binary may be
// killed before Main removes it, so its name carries our pid and each run
// first sweeps the directories of binaries that are gone.
func sharedDir() (string, error) {
	tmp := os.TempDir()
	if old, _ := filepath.Glob(filepath.Join(tmp, "linkharvest-minio-*")); len(old) > 0 {
		for _, d := range old {
			rest := strings.TrimPrefix(filepath.Base(d), "linkharvest-minio-")
			pidStr, _, _ := strings.Cut(rest, "-")
			if pid, err := strconv.Atoi(pidStr); err == nil && pid != os.Getpid() && !processAlive(pid) {
				os.RemoveAll(d)
			}
		}
	}
	return os.MkdirTemp(tmp, fmt.Sprintf("linkharvest-minio-%d-", os.Getpid()))
}

func dockerMinIO(user, password string) (*minioServer, error) {
	img := os.Getenv("LINKHARVEST_MINIO_IMAGE")
	if img == "" {
		img = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testcontainers.Run(ctx, img,
		testcontainers.WithCmd("server", "/data"),
		testcontainers.WithEnv(map[string]string{"MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": password, "MINIO_BROWSER": "off"}),
		testcontainers.WithExposedPorts("9000/tcp"),
		fixedPort(port, "9000/tcp"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/minio/health/live").WithPort("9000/tcp").WithStartupTimeout(time.Minute)),
	)
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return nil, err
	}
	return &minioServer{endpoint: "http://127.0.0.1:" + strconv.Itoa(port), user: user, password: password, port: port, container: c}, nil
}
