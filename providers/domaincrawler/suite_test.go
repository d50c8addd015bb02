package domaincrawler

import (
	"testing"

	"github.com/linkharvest/linkharvest/providers/providertest"
)

// TestSuite runs the checks every vendor client passes (providertest).
func TestSuite(t *testing.T) {
	t.Parallel()
	providertest.Run(t, Vendor, providertest.Options{NoThrottle: true})
}
