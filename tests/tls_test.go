package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestRedisTLS runs a job with workers and enqueue on rediss:// with a
// password, trusting the server's private CA through REDIS_CA_FILE.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	port := testenv.FreePort(t)
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
		"--requirepass", "tlsPw", "--save", "", "--dir", dir)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, fmt.Sprintf("127.0.0.1:%d", port))
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	base, _ := startSandbox(t)
	env := append(append(s3.Env(), vendorEnv(base)...), fmt.Sprintf("REDIS_URL=rediss://:tlsPw@127.0.0.1:%d/0", port),
		"REDIS_CA_FILE="+cert, "SINK_URL="+s3.SinkURL("tls"), "METRICS_ADDR=")
	w := start(t, env, "worker")
	file := filepath.Join(dir, "d.txt")
	os.WriteFile(file, []byte("rows-1500.example\n"), 0o644)
	stdout, stderr, code := runCmd(t, env, nil, 2*time.Minute, "enqueue", "--job", "tls", "--wait", "--json", file)
	if code != 0 {
		t.Fatalf("enqueue over TLS: exit %d\n%s\n%s\nredis: %s", code, stdout, stderr, out.String())
	}
	var sum struct{ Records int }
	lastJSON(t, stdout, &sum)
	if sum.Records != 1500 {
		t.Errorf("records %d, want 1500", sum.Records)
	}
	w.stop(t, 40*time.Second)
}
