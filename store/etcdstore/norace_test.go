//go:build !race

package etcdstore_test

// slow scales the tests' time bounds; see race_test.go.
const slow = 1
