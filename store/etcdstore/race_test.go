//go:build race

package etcdstore_test

// slow scales the tests' time bounds: under the race detector the etcd
// members in this process run some tenfold slower.
const slow = 4
