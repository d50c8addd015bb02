// Package warehouse runs the SQL that docs/warehouse.md gives users, on a
// database/sql connection to DuckDB, so that tests check the documented
// SQL itself on output laid out as the sink lays it out.
package warehouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/docs"
	"github.com/linkharvest/linkharvest/sink"
)

// Key names a (provider, endpoint, domain).
type Key struct{ Provider, Endpoint, Domain string }

// CurrentRows rebuilds each (provider, endpoint, domain)'s current rows
// from a chain of jobs, a full harvest first and then each refresh of the
// one before, whose output lies under root (a local copy of the sink, or
// anything DuckDB reads, such as s3:// with httpfs), with the SQL of
// docs/warehouse.md ("Refresh jobs: rebuilding the current rows"). The
// rows come in the query's order, Change unset; a domain with no current
// rows has no entry. db must be a DuckDB database.
func CurrentRows(ctx context.Context, db *sql.DB, root string, chain []string) (map[Key][]sink.Record, error) {
	if len(chain) == 0 {
		return nil, errors.New("warehouse: no job in the chain")
	}
	var blocks [3]string
	for i, name := range []string{"current-rows:load", "current-rows:check", "current-rows:query"} {
		b, err := Block(docs.Warehouse, name)
		if err != nil {
			return nil, err
		}
		blocks[i] = b
	}
	// Variables and temporary tables belong to one connection.
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	jobs := make([]string, len(chain))
	for i, j := range chain {
		jobs[i] = quote(j)
	}
	vars := "SET VARIABLE lh_root = " + quote(strings.TrimSuffix(root, "/")) + ";\n" +
		"SET VARIABLE lh_chain = [" + strings.Join(jobs, ", ") + "];"
	if _, err := conn.ExecContext(ctx, vars); err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	if _, err := conn.ExecContext(ctx, blocks[0]); err != nil {
		return nil, fmt.Errorf("warehouse: loading the chain: %w", err)
	}
	if err := check(ctx, conn, blocks[1]); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, blocks[2])
	if err != nil {
		return nil, fmt.Errorf("warehouse: current rows: %w", err)
	}
	defer rows.Close()
	out := map[Key][]sink.Record{}
	for rows.Next() {
		var (
			r                            sink.Record
			fetched                      string
			src, tgt, anchor, title, raw sql.NullString
			nofollow                     sql.NullBool
		)
		if err := rows.Scan(&r.JobID, &r.Provider, &r.Endpoint, &r.Domain, &r.Page, &fetched, &r.Kind,
			&src, &tgt, &anchor, &nofollow, &title, &raw); err != nil {
			return nil, fmt.Errorf("warehouse: current rows: %w", err)
		}
		if r.FetchedAt, err = time.Parse(time.RFC3339Nano, fetched); err != nil {
			return nil, fmt.Errorf("warehouse: fetched_at: %w", err)
		}
		r.SourceURL, r.TargetURL, r.Anchor, r.SourceTitle = str(src), str(tgt), str(anchor), str(title)
		if nofollow.Valid {
			r.Nofollow = &nofollow.Bool
		}
		if raw.Valid {
			r.Raw = json.RawMessage(raw.String)
		}
		k := Key{r.Provider, r.Endpoint, r.Domain}
		out[k] = append(out[k], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: current rows: %w", err)
	}
	return out, nil
}

// check runs the chain's check, which lists what is wrong with it.
func check(ctx context.Context, conn *sql.Conn, query string) error {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("warehouse: checking the chain: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var job, problem string
		if err := rows.Scan(&job, &problem); err != nil {
			return fmt.Errorf("warehouse: checking the chain: %w", err)
		}
		problems = append(problems, "job "+job+" "+problem)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warehouse: checking the chain: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("warehouse: not a chain of refreshes: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Block returns the fenced SQL block that follows the comment
// "<!-- warehouse-test: NAME -->" in a Markdown document.
func Block(doc, name string) (string, error) {
	marker := "<!-- warehouse-test: " + name + " -->\n"
	i := strings.Index(doc, marker)
	if i < 0 {
		return "", fmt.Errorf("warehouse: no %q block in the document", name)
	}
	if strings.Contains(doc[i+len(marker):], marker) {
		return "", fmt.Errorf("warehouse: two %q blocks in the document", name)
	}
	rest, ok := strings.CutPrefix(doc[i+len(marker):], "```sql\n")
	if !ok {
		return "", fmt.Errorf("warehouse: %q is not followed by a ```sql block", name)
	}
	body, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		return "", fmt.Errorf("warehouse: the %q block does not end", name)
	}
	return body, nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func str(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}
