package sink

import (
	"fmt"
	"path"
	"strings"
)

// PageKey is the key of a page's data object, relative to the sink:
// provider=…/endpoint=…/dt=…/job=…/{domain}.{page:05d}.ndjson.gz.
// It depends on nothing but its arguments (dt is the job's date, not the
// time of writing), so a retried page overwrites its own object.
func PageKey(provider, endpoint, dt, jobID, domain string, page int) string {
	return fmt.Sprintf("provider=%s/endpoint=%s/dt=%s/job=%s/%s.%05d.ndjson.gz", provider, endpoint, dt, jobID, domain, page)
}

// ManifestKey is the key of a job's manifest: jobs/{job}/manifest.json.
func ManifestKey(jobID string) string { return "jobs/" + jobID + "/manifest.json" }

// SuccessKey is the key of a job's completion marker: jobs/{job}/_SUCCESS,
// written last, after the manifest.
func SuccessKey(jobID string) string { return "jobs/" + jobID + "/_SUCCESS" }

// tmpPrefix starts the names of the file sink's temporary files.
const tmpPrefix = ".tmp-"

// checkKey rejects keys that are not a clean relative path: they could
// escape a file sink's directory or name different objects on S3 and disk.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("sink: empty key")
	case strings.HasPrefix(key, "/"), strings.HasSuffix(key, "/"), path.Clean(key) != key,
		key == "..", strings.HasPrefix(key, "../"), strings.Contains(key, "\\"), strings.ContainsRune(key, 0):
		return fmt.Errorf("sink: invalid key %q: want a clean relative path", key)
	case strings.HasPrefix(path.Base(key), tmpPrefix):
		return fmt.Errorf("sink: invalid key %q: names starting with %s are reserved", key, tmpPrefix)
	}
	return nil
}

// SupersededKey marks a job whose manifest no longer describes it: a
// resubmission added work after the job had ended. It is written when
// _SUCCESS is removed and removed before _SUCCESS is written again.
func SupersededKey(jobID string) string { return "jobs/" + jobID + "/_SUPERSEDED" }
