// Package docs holds the project's documentation. Code that runs SQL the
// documentation gives users reads it from here, so the SQL the docs show is
// the SQL the tests run.
package docs

import _ "embed"

// Warehouse is warehouse.md: loading the output into a warehouse.
//
//go:embed warehouse.md
var Warehouse string
