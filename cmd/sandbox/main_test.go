package main

import (
	"strings"
	"testing"
	"time"
)

// --today and --churn: read strictly; a bad value is an error naming the
// flag (main exits 2 on it).
func TestWorldFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		today   string // "" = the zero day (the clock's date)
		churn   float64
		wantErr string
	}{
		{"defaults", nil, nil, "", 0, ""},
		{"flags", []string{"--today", "2025-06-01", "--churn", "0.25"}, nil, "2025-06-01", 0.25, ""},
		{"environment", nil, map[string]string{"SANDBOX_TODAY": "2030-01-31", "SANDBOX_CHURN": "1"}, "2030-01-31", 1, ""},
		{"churn above 1", []string{"--churn", "1.5"}, nil, "", 0, "--churn"},
		{"churn below 0", nil, map[string]string{"SANDBOX_CHURN": "-0.1"}, "", 0, "SANDBOX_CHURN"},
		{"churn not a number", []string{"--churn", "lots"}, nil, "", 0, "--churn"},
		{"today before the epochs", []string{"--today", "2023-12-31"}, nil, "", 0, "--today"},
		{"today not a day", []string{"--today", "2025-02-30"}, nil, "", 0, "YYYY-MM-DD"},
		{"today with a time", nil, map[string]string{"SANDBOX_TODAY": "2025-02-01T00:00:00Z"}, "", 0, "SANDBOX_TODAY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, o, err := parse(tc.args, lookup)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := time.Time{}
			if tc.today != "" {
				want, _ = time.Parse(time.DateOnly, tc.today)
			}
			if !o.Today.Equal(want) || o.Churn != tc.churn {
				t.Errorf("today %v churn %v, want %v %v", o.Today, o.Churn, want, tc.churn)
			}
		})
	}
}
