package runner

import (
	"strings"
	"testing"
)

func TestSentinelURLs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url              string
		master           string
		addrs            string
		db               int
		pass, sentinelPw string
		tls              bool
		bad              string
	}{
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", master: "mymaster", addrs: "127.0.0.1:26379"},
		{url: "redis+sentinel://:Pw%2FSecret@s1:26379,s2:26380/main/3?sentinel_password=S3ntinel", master: "main",
			addrs: "s1:26379,s2:26380", db: 3, pass: "Pw/Secret", sentinelPw: "S3ntinel"},
		{url: "rediss+sentinel://s1:26379/main", master: "main", addrs: "s1:26379", tls: true},
		{url: "redis+sentinel://:Pw-Secret-1@s1:26379", bad: "name the primary"},
		{url: "redis+sentinel://:Pw-Secret-1@s1/main", bad: "host:port"},
		{url: "redis+sentinel://:Pw-Secret-1@s1:1/main/x", bad: "database"},
	}
	for _, c := range cases {
		opt, fo, err := parseRedisURL(c.url)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) || strings.Contains(err.Error(), "Pw-Secret-1") {
				t.Errorf("%s: err %v, want %q without the password", c.url, err, c.bad)
			}
			continue
		}
		if err != nil || opt != nil || fo == nil {
			t.Fatalf("%s: %v %v %v", c.url, opt, fo, err)
		}
		if fo.MasterName != c.master || strings.Join(fo.SentinelAddrs, ",") != c.addrs || fo.DB != c.db ||
			fo.Password != c.pass || fo.SentinelPassword != c.sentinelPw || (fo.TLSConfig != nil) != c.tls {
			t.Errorf("%s: %+v", c.url, fo)
		}
	}
	if opt, fo, err := parseRedisURL("redis://127.0.0.1:6379/2"); err != nil || fo != nil || opt.DB != 2 {
		t.Errorf("a plain URL: %v %v %v", opt, fo, err)
	}
	if c, err := OpenRedis(RedisConfig{URL: "redis+sentinel://127.0.0.1:1/main"}); err != nil || c == nil {
		t.Errorf("OpenRedis with a sentinel URL: %v", err)
	} else {
		c.Close()
	}
}
