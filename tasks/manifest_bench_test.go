package tasks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// BenchmarkManifest writes the manifest of a job of LINKHARVEST_BENCH_DOMAINS
// one-page domains (default 200,000; the README's figure is for 1,000,000)
// two ways, reporting the peak Go heap of each and their ratio:
//
//   - streamed: as the finalizer does it, in parts, to a stream (the S3
//     multipart upload holds a few 8 MB parts; io.Discard here);
//
//   - whole (the baseline): every outcome in one part and the whole body in
//     memory, as a manifest built in memory and then uploaded would be.
//
//     go test -run '^$' -bench Manifest -benchtime 1x ./tasks/
//     LINKHARVEST_BENCH_DOMAINS=1000000 go test -run '^$' -bench Manifest -benchtime 1x -timeout 30m ./tasks/
func BenchmarkManifest(b *testing.B) {
	n := benchDomains(b, 200_000)
	rds := testenv.Redis(b)
	s := NewStore(rds.Client(b))
	ctx := context.Background()
	job := "bench"
	if _, err := s.create(ctx, job, Spec{Providers: []string{"dataforseo"}}, time.Now()); err != nil {
		b.Fatal(err)
	}
	// Fill the job's outcomes directly (as n ended pages would leave them).
	k := keysFor(job)
	const batch = 5000
	for i := 0; i < n; i += batch {
		pipe := s.rdb.Pipeline()
		for j := i; j < min(i+batch, n); j++ {
			d := fmt.Sprintf("www-%07d.example", j)
			u := "dataforseo|backlinks|" + d + "|1"
			long, _, _ := encodeOutcome(job, u, Outcome{Status: "ok", Records: 1 + j%1000, Bytes: 150 * int64(1+j%1000),
				Key: fmt.Sprintf("provider=dataforseo/endpoint=backlinks/dt=2026-11-22/job=%s/%s.00001.ndjson.gz", job, d)})
			pipe.HSet(ctx, k.bucket(u), u, long)
			pipe.SetBit(ctx, k.buckets, int64(bucketOf(u)), 1)
		}
		pipe.HIncrBy(ctx, k.meta, "units", int64(min(i+batch, n)-i))
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}

	var peaks [2]float64
	for i, mode := range []string{"streamed", "whole"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				old := manifestPartUnits
				var out io.Writer = io.Discard
				var body bytes.Buffer
				if mode == "whole" {
					manifestPartUnits = n + 1
					out = &body
				}
				peak, size := peakHeap(func() int64 {
					cw := &countingWriter{w: out}
					if _, err := s.writeManifest(ctx, cw, job, "2026-11-22T00:00:00Z"); err != nil {
						b.Fatal(err)
					}
					return cw.n
				})
				manifestPartUnits = old
				peaks[i] = peak
				b.ReportMetric(peak/1e6, "peak-heap-MB")
				b.ReportMetric(float64(size)/1e6, "manifest-MB")
			}
		})
	}
	if peaks[0] > 0 {
		b.Logf("%d domains: peak heap streamed %.0f MB, whole %.0f MB: the streamed manifest needs %.2f× the memory", n, peaks[0]/1e6, peaks[1]/1e6, peaks[0]/peaks[1])
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// peakHeap runs f and returns the highest live Go heap (bytes in heap
// objects, sampled every 5 ms) above the level before it.
func peakHeap(f func() int64) (float64, int64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() float64 { metrics.Read(sample); return float64(sample[0].Value.Uint64()) }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := uint64(read()); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	size := f()
	close(done)
	return max(float64(peak.Load())-base, 0), size
}
