package dataforseo

import (
	"strconv"
	"strings"
)

// A token chain must repeat its first request exactly: the vendor says
// that with search_after_token "all other parameters should be identical
// to the previous request", and the request that produced a token had an
// offset and a limit of its own (offset 20,000 and limit 1000 for the
// chain the pipeline starts past the vendor's largest offset). The
// pipeline plans pages by position (Request.Offset is where a page's rows
// start, Request.Limit how many it expects), which are not those values.
// So the cursor a Page hands on carries, next to the vendor's token, the
// offset and limit that were sent with the request that produced it; a
// request with that cursor sends the same two values again, whatever its
// planned position and size. The vendor returns at most limit rows from
// the token's position on; none are dropped here, so a shorter planned
// last page simply gets the rows that remain.
//
// Form: "c1.<offset>.<limit>.<vendor token>". A cursor without the prefix
// (a task enqueued before this form existed) is taken as a bare vendor
// token and sent with the request's own limit and no offset.
const cursorPrefix = "c1."

// chainPos is the paging of a request that continues a token chain.
type chainPos struct {
	offset, limit int
	token         string
	bare          bool // a bare vendor token: no offset/limit known
}

func makeCursor(offset, limit int, token string) string {
	if token == "" {
		return ""
	}
	b := make([]byte, 0, len(cursorPrefix)+16+len(token))
	b = append(b, cursorPrefix...)
	b = strconv.AppendInt(b, int64(offset), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(limit), 10)
	b = append(b, '.')
	return string(append(b, token...))
}

// parseCursor reads a cursor; ok is false for one this client did not
// write in either form (an empty token, a prefix with bad numbers).
func parseCursor(c string) (chainPos, bool) {
	rest, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok {
		return chainPos{token: c, bare: true}, c != ""
	}
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) != 3 || parts[2] == "" {
		return chainPos{}, false
	}
	off, err1 := strconv.Atoi(parts[0])
	lim, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || off < 0 || off > maxOffset || lim < 1 || lim > maxLimit {
		return chainPos{}, false
	}
	return chainPos{offset: off, limit: lim, token: parts[2]}, true
}
