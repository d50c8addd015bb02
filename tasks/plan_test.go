package tasks

import (
	"fmt"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

func TestNextPages(t *testing.T) {
	dfs := providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true}
	xovi := providers.Paging{Kind: providers.PagingOffset, PageSize: 1000}
	export := providers.Paging{Kind: providers.PagingCursor, PageSize: 10000}
	none := providers.Paging{Kind: providers.PagingNone}
	type page struct {
		page, offset, limit int
		cursor              string
	}
	cases := []struct {
		name    string
		maxRows int
		pg      providers.Paging
		p       PagePayload
		m       memo
		want    []page
	}{
		{"one page", 0, dfs, PagePayload{Page: 1, Limit: 1000}, memo{Total: 1000, Records: 1000}, nil},
		{"empty", 0, dfs, PagePayload{Page: 1, Limit: 1000}, memo{Total: 0}, nil},
		{"1001 rows", 0, dfs, PagePayload{Page: 1, Limit: 1000}, memo{Total: 1001, Records: 1000},
			[]page{{2, 1000, 1000, ""}}},
		{"max rows cuts the plan", 1500, dfs, PagePayload{Page: 1, Limit: 1000}, memo{Total: 25000, Records: 1000},
			[]page{{2, 1000, 500, ""}}},
		{"max rows below a page", 300, dfs, PagePayload{Page: 1, Limit: 300}, memo{Total: 25000, Records: 300}, nil},
		{"xovi 2500 rows in parallel", 0, xovi, PagePayload{Page: 1, Limit: 1000}, memo{Total: 2500, Records: 1000},
			[]page{{2, 1000, 1000, ""}, {3, 2000, 1000, ""}}},
		{"later offset pages plan nothing", 0, xovi, PagePayload{Page: 2, Offset: 1000, Limit: 1000}, memo{Total: 2500, Records: 1000}, nil},
		{"page 21 (offset 20000) chains page 22", 0, dfs, PagePayload{Page: 21, Offset: 20000, Limit: 1000},
			memo{Total: 25000, Records: 1000, Next: "tok21"}, []page{{22, 21000, 1000, "tok21"}}},
		{"page 24 chains the last page", 0, dfs, PagePayload{Page: 24, Offset: 23000, Limit: 1000},
			memo{Total: 24500, Records: 1000, Next: "tok24"}, []page{{25, 24000, 1000, "tok24"}}},
		{"last page chains nothing", 0, dfs, PagePayload{Page: 25, Offset: 24000, Limit: 1000, Cursor: "tok24"},
			memo{Total: 25000, Records: 1000, Next: "tok25"}, nil},
		{"no cursor past the cap: stop", 0, dfs, PagePayload{Page: 21, Offset: 20000, Limit: 1000},
			memo{Total: 25000, Records: 1000}, nil},
		{"unknown total: walk on a full page", 0, xovi, PagePayload{Page: 3, Offset: 2000, Limit: 1000},
			memo{Total: -1, Records: 1000}, []page{{4, 3000, 1000, ""}}},
		{"unknown total: stop on a short page", 0, xovi, PagePayload{Page: 3, Offset: 2000, Limit: 1000},
			memo{Total: -1, Records: 10}, nil},
		{"cursor endpoint follows next", 0, export, PagePayload{Page: 1, Limit: 10000},
			memo{Total: -1, Records: 10000, Next: "n1"}, []page{{2, 10000, 10000, "n1"}}},
		{"cursor endpoint ends without next", 0, export, PagePayload{Page: 2, Offset: 10000, Limit: 10000, Cursor: "n1"},
			memo{Total: -1, Records: 5000}, nil},
		{"cursor endpoint stops at max rows", 15000, export, PagePayload{Page: 1, Limit: 10000},
			memo{Total: -1, Records: 10000, Next: "n1"}, []page{{2, 10000, 5000, "n1"}}},
		// The vendor's index moves while a job runs.
		{"a total that grew adds the pages past the plan", 0, xovi, PagePayload{Page: 2, Offset: 1000, Limit: 1000, Plan: 1500},
			memo{Total: 3500, Records: 1000}, []page{{3, 2000, 1000, ""}, {4, 3000, 1000, ""}}},
		{"a grown page does not plan itself", 0, xovi, PagePayload{Page: 3, Offset: 2000, Limit: 1000, Plan: 1500},
			memo{Total: 3500, Records: 1000}, []page{{4, 3000, 1000, ""}}},
		{"growth within the planned pages adds nothing", 0, xovi, PagePayload{Page: 2, Offset: 1000, Limit: 1000, Plan: 1500},
			memo{Total: 1900, Records: 900}, nil},
		{"a total that shrank adds nothing", 0, xovi, PagePayload{Page: 2, Offset: 1000, Limit: 1000, Plan: 2500},
			memo{Total: 1200, Records: 200}, nil},
		{"growth stops at max rows", 2500, xovi, PagePayload{Page: 2, Offset: 1000, Limit: 1000, Plan: 1500},
			memo{Total: 9000, Records: 1000}, []page{{3, 2000, 500, ""}}},
		{"growth is planned up to the largest offset, then chained", 0, dfs, PagePayload{Page: 20, Offset: 19000, Limit: 1000, Plan: 19500},
			memo{Total: 30000, Records: 1000}, []page{{21, 20000, 1000, ""}}},
		{"single-call endpoint", 0, none, PagePayload{Page: 1}, memo{Total: 5000, Records: 5000}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.Job, c.p.Provider, c.p.Endpoint, c.p.Domain = "j", "p", "e", "d.com"
			got := nextPages(c.maxRows, &c.p, c.pg, &c.m)
			var g []page
			for _, p := range got {
				if p.Job != "j" || p.Provider != "p" || p.Endpoint != "e" || p.Domain != "d.com" {
					t.Fatalf("child %+v lost its identity", p)
				}
				g = append(g, page{p.Page, p.Offset, p.Limit, p.Cursor})
			}
			if fmt.Sprint(g) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", g, c.want)
			}
		})
	}
}

// TestPlanCoversEveryRowOnce walks the whole plan of a domain as the
// workers would and checks the pages tile [0, total) exactly.
func TestPlanCoversEveryRowOnce(t *testing.T) {
	dfs := providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true}
	for _, total := range []int{0, 1, 999, 1000, 1001, 20000, 20999, 21000, 21001, 25000, 47123} {
		for _, maxRows := range []int{0, 1, 500, 20500, 30000} {
			want := total
			if maxRows > 0 && maxRows < want {
				want = maxRows
			}
			size := pageSize(maxRows, dfs)
			queue := []PagePayload{{Job: "j", Page: 1, Limit: size}}
			covered := make([]int, want+size)
			seen := map[int]bool{}
			for len(queue) > 0 {
				p := queue[0]
				queue = queue[1:]
				if seen[p.Page] {
					t.Fatalf("total %d max %d: page %d planned twice", total, maxRows, p.Page)
				}
				seen[p.Page] = true
				n := min(p.Limit, max(total-p.Offset, 0))
				for i := p.Offset; i < p.Offset+n && i < len(covered); i++ {
					covered[i]++
				}
				next := ""
				if p.Offset+n < total {
					next = fmt.Sprintf("tok%d", p.Offset+n)
				}
				queue = append(queue, nextPages(maxRows, &p, dfs, &memo{Total: total, Records: n, Next: next})...)
			}
			for i := 0; i < want; i++ {
				if covered[i] != 1 {
					t.Fatalf("total %d max %d: row %d covered %d times", total, maxRows, i, covered[i])
				}
			}
			for i := want; i < len(covered); i++ {
				if covered[i] != 0 {
					t.Fatalf("total %d max %d: row %d past the limit fetched", total, maxRows, i)
				}
			}
		}
	}
}
