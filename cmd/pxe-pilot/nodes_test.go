package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestNodesFollowsPages: "pxe-pilot nodes" reads the API 1,000 nodes a
// page; with 2,500 nodes the table has every node once, and --json is one
// {"nodes":[…]} document holding all of them (it used to be three
// documents, one a page, with their cursors).
func TestNodesFollowsPages(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	const fleet = 2500
	for i := 0; i < fleet; i++ {
		m := store.MAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))
		if _, _, err := st.RecordBoot(m, store.Sighting{Time: now}, func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			t.Fatal(err)
		}
	}
	env := apiEnv(t, st)

	code, out := runCmd(t, env, "nodes", "--json")
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&doc); code != 0 || err != nil || dec.More() || len(doc) != 1 || doc["nodes"] == nil {
		t.Fatalf("nodes --json: exit %d, %v, more documents: %t, keys %d, want one {\"nodes\":[…]}\n%.300s", code, err, dec.More(), len(doc), out)
	}
	var nodes []struct{ MAC string }
	if err := json.Unmarshal(doc["nodes"], &nodes); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.MAC] = true
	}
	if len(nodes) != fleet || len(seen) != fleet {
		t.Fatalf("nodes --json: %d nodes, %d distinct, want %d", len(nodes), len(seen), fleet)
	}

	code, out = runCmd(t, env, "nodes")
	if rows := strings.Count(out, "52:54:00:00:"); code != 0 || rows != fleet {
		t.Fatalf("nodes: exit %d, %d rows, want %d", code, rows, fleet)
	}
}
