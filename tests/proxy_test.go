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
// cut (every connection dropped, new ones refused) for 40 s, longer than
// Asynq's 30 s task lease and the limiter's leases, while it runs tasks.
// Its connections are gone, so once its heartbeat is stale the other worker
// re-runs its tasks (internal/recovery; the cut-off one may still be
// running them: both write the same keys); when the line is back, past its
// lease, the cut-off worker writes nothing back for them and carries on.
// Nothing is lost or doubled.
func TestFaultNetworkCut(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 150, []string{"PROVIDER_LIMITS=dataforseo=2000/1m:8"}, "--latency", "300ms")
	proxy := newCutProxy(t, r.redis.Addr)
	viaProxy := append(append([]string{}, r.env...), "REDIS_URL=redis://"+proxy.addr()+"/0")
	cutOff := start(t, viaProxy, "worker")
	r.startWorkers(1)
	done := r.enqueueAsync("netcut")
	r.waitProgress("netcut", 20, 2*time.Minute)
	n := 0
	for deadline := time.Now().Add(10 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n = r.inFlight(cutOff.cmd.Process.Pid)
	}
	if n == 0 {
		t.Fatal("the worker behind the proxy runs no task: the cut would test nothing")
	}
	proxy.setCut(true)
	r.logf("line cut; the worker behind it had %d tasks running", n)
	time.Sleep(40 * time.Second)
	proxy.setCut(false)
	r.logf("line mended")
	r.wait(done, 4*time.Minute, 0)
	r.proof("network-cut", "netcut")
	cutOff.stop(t, 15*time.Second) // it survived the cut
}
