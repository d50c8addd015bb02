package sink

import _ "embed"

// RecordSchema is the JSON Schema (draft 2020-12) of one output record,
// for the warehouse: what EncodePage writes, key for key (a test keeps
// the two in step).
//
//go:embed record.schema.json
var RecordSchema []byte
