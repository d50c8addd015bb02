package tests

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// cutProxy forwards loopback TCP to a target and can cut the line: every
// open connection is dropped and new ones are closed at once until it is
// mended, as a network partition would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close(); c.Close() }()
		go func() { io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// TestFaultNetworkCut: one worker reaches Redis through a line that is
// cut for longer than Asynq's 30 s task lease and the limiter's leases;
// another worker takes over the expired tasks; nothing is lost or doubled.
func TestFaultNetworkCut(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 200, "--latency", "200ms")
	proxy := newCutProxy(t, r.redis.Addr)
	viaProxy := append(append([]string{}, r.env...), "REDIS_URL=redis://"+proxy.addr()+"/0")
	cutOff := start(t, viaProxy, "worker")
	r.startWorkers(1)
	_, done := r.enqueueAsync("netcut")
	r.waitProgress("netcut", 20, 2*time.Minute)
	proxy.setCut(true)
	time.Sleep(40 * time.Second)
	proxy.setCut(false)
	res := r.wait(done, 6*time.Minute)
	if res.code != 0 {
		t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
	}
	r.proof("netcut")
	cutOff.stop(t, 30*time.Second) // it survived the cut
}
