// Command sandbox serves faithful stand-ins for the four vendors' APIs on
// one port, for tests, demos and benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(2)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	addr := fs.String("addr", env("SANDBOX_ADDR", "127.0.0.1:8089"), "listen address (SANDBOX_ADDR)")
	latency := fs.Duration("latency", 0, "added to every call")
	rate := fs.String("rate", env("SANDBOX_RATE", "2000/1m"), "calls allowed in any sliding window, e.g. 2000/1m; 0 = unlimited (SANDBOX_RATE)")
	conc := fs.Int("concurrency", 30, "calls allowed at once; 0 = unlimited")
	fail := fs.Float64("fail", 0, "probability of an injected transient failure")
	seed := fs.Int64("seed", 1, "data seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, period, err := sandbox.ParseRate(*rate)
	if err != nil {
		return err
	}
	if *fail < 0 || *fail > 1 {
		return errors.New("--fail must be within 0..1")
	}
	srv := registry.Sandbox(sandbox.Options{Latency: *latency, Rate: n, Period: period, Concurrency: *conc, Fail: *fail, Seed: *seed})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("sandbox listening", "addr", ln.Addr().String(), "rate", *rate, "concurrency", *conc, "latency", *latency, "fail", *fail, "seed", *seed)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
