package storetest

import (
	"strconv"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// fleet writes n nodes with varied states, profiles, labels, host names
// and last boots, in a shuffled order, and returns them as stored.
func fleet(t *testing.T, b store.Backend, n int) []store.Node {
	t.Helper()
	for k := 0; k < n; k++ {
		i := (k * 7) % n // not in MAC order
		m := MAC(i)
		if i%5 != 4 { // every fifth never booted
			must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(60 * i), IP: "198.51.100.9",
				Facts: store.Facts{Manufacturer: "QEMU", Product: "Standard PC"}}, localBoot)))
		}
		must[store.Node](t, "Update")(b.Update(m, true, at(1), func(nd *store.Node) (*store.Event, error) {
			if i%4 == 0 {
				nd.Profile = "web"
			}
			nd.Labels = map[string]string{"rack": []string{"r1", "r2"}[i%2]}
			if i%3 == 0 {
				nd.Labels["gpu"] = "yes"
			}
			if i == 11 {
				nd.Hostname = "DB-Primary"
			}
			return nil, nil
		}))
		if i%3 == 0 {
			must[store.Node](t, "SetReinstall")(b.SetReinstall(m, true, at(2)))
		}
	}
	nodes := must[[]store.Node](t, "List")(b.List())
	if len(nodes) != n {
		t.Fatalf("List after writing %d nodes: %d", n, len(nodes))
	}
	return nodes
}

func testList(t *testing.T, b store.Backend) {
	nodes := fleet(t, b, 12)
	for i, n := range nodes {
		if n.MAC != MAC(i) {
			t.Fatalf("List()[%d] = %s, want %s (MAC order)", i, n.MAC, MAC(i))
		}
		same(t, "List entry vs Get", n, must[store.Node](t, "Get")(b.Get(n.MAC)))
	}
}

func testListPage(t *testing.T, b store.Backend) {
	all := fleet(t, b, 20)
	for _, limit := range []int{1, 3, 5, 20, 100} {
		var got []store.Node
		after := store.MAC("")
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: more than 20 pages for 20 nodes", limit)
			}
			page, next, err := b.ListPage(after, limit, store.Filter{})
			if err != nil {
				t.Fatalf("ListPage(%q, %d): %v", after, limit, err)
			}
			if len(page) > limit {
				t.Fatalf("ListPage(%q, %d) returned %d nodes", after, limit, len(page))
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			if len(page) != limit || next != page[len(page)-1].MAC {
				t.Fatalf("ListPage(%q, %d): %d nodes and cursor %q; want a full page whose last MAC is the cursor", after, limit, len(page), next)
			}
			after = next
		}
		same(t, "all pages joined (limit "+strconv.Itoa(limit)+")", got, all)
	}
	// The cursor is exclusive and need not be a stored MAC.
	page, _, err := b.ListPage("52:54:00:00:00:04", 2, store.Filter{})
	if err != nil || len(page) != 2 || page[0].MAC != MAC(5) {
		t.Errorf("ListPage after %s = %v, %v; want %s first", MAC(4), macs(page), err, MAC(5))
	}
	page, _, err = b.ListPage("52:54:00:00:00:04:", 1, store.Filter{})
	if err != nil || len(page) != 1 || page[0].MAC != MAC(5) {
		t.Errorf("ListPage after a non-MAC cursor = %v, %v; want %s", macs(page), err, MAC(5))
	}
	if page, next, err := b.ListPage(MAC(19), 5, store.Filter{}); err != nil || len(page) != 0 || next != "" {
		t.Errorf("ListPage after the last node = %v, %q, %v; want nothing", macs(page), next, err)
	}
}

func testListPageFilters(t *testing.T, b store.Backend) {
	all := fleet(t, b, 30)
	filters := []struct {
		f    store.Filter
		want int
	}{
		{store.Filter{State: store.StateReinstall}, 10},
		{store.Filter{Profile: "web"}, 8},
		{store.Filter{Profile: "-"}, 22},
		{store.Filter{Label: "gpu"}, 10},
		{store.Filter{Label: "rack=r2"}, 15},
		{store.Filter{Label: "rack=r3"}, 0},
		{store.Filter{SeenSince: at(60 * 20)}, 8}, // 20..29, minus 24 and 29
		{store.Filter{Query: "db-primary"}, 1},
		{store.Filter{Query: "standard pc"}, 24},
		{store.Filter{State: store.StateReinstall, Label: "rack=r1", Profile: "web"}, 3}, // 0, 12, 24
	}
	for _, tc := range filters {
		var want []store.Node
		for i := range all {
			if tc.f.Match(&all[i]) {
				want = append(want, all[i])
			}
		}
		if len(want) != tc.want {
			t.Fatalf("filter %+v: the fleet has %d matches, the test expects %d (fix the fleet)", tc.f, len(want), tc.want)
		}
		var got []store.Node
		after := store.MAC("")
		for pages := 0; pages <= 31; pages++ {
			page, next, err := b.ListPage(after, 4, tc.f)
			if err != nil {
				t.Fatalf("ListPage(%+v): %v", tc.f, err)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			after = next
		}
		if len(got) != len(want) {
			t.Errorf("filter %+v: %v, want %v", tc.f, macs(got), macs(want))
			continue
		}
		same(t, "filtered pages", got, want)
	}
}

func macs(nodes []store.Node) []store.MAC {
	out := make([]store.MAC, len(nodes))
	for i, n := range nodes {
		out[i] = n.MAC
	}
	return out
}
