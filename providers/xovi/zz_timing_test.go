package xovi

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func TestZZTiming(t *testing.T) {
	sb := newSandbox(t, sandbox.Options{})
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		r, _ := http.Get(sb.URL + "/links/getBacklinks/k/rows-5000.example/json/1000/1")
		t1 := time.Now()
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		t2 := time.Now()
		a := (&sbHandler{m: sb.s.Meter(Name)}).answer(sbReq{key: "k", domain: "rows-5000.example", format: "json", limit: "1000", skip: "1"})
		t3 := time.Now()
		_ = a.json()
		t4 := time.Now()
		page, err := decodeForTest(t, b)
		t5 := time.Now()
		t.Log(len(b), t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), t5.Sub(t4), len(page.Items), err)
	}
}
