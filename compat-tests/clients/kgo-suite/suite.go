// Package kgosuite pins the franz-go version whose own pkg/kgo integration tests
// setup.sh compiles (`go test -c github.com/twmb/franz-go/pkg/kgo`) into the cached
// kgo.test binary that bin/kgo-suite runs against sluice. Nothing else lives here.
package kgosuite

import _ "github.com/twmb/franz-go/pkg/kgo"
