package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// fullNode sets every field, with times that need all nine digits.
func fullNode() storedNode {
	at := func(ns int) *time.Time { t := t0.Add(time.Duration(ns)); return &t }
	return storedNode{
		Node: Node{
			MAC: "52:54:00:12:34:56", Reinstall: true, State: StateReinstall,
			LocalBootScript: "sanboot --no-describe --drive 0x80",
			LastSeen:        at(123456789), CreatedAt: *at(1), StateChangedAt: *at(999999999),
			LastIP: "198.51.100.10", BootCount: 1 << 40, InstallCount: 7,
			Facts: Facts{Platform: "efi", BuildArch: "x86_64", UUID: "4c4c4544-0042-3510-8052-b4c04f4d3532",
				Serial: "CZ1234", Manufacturer: "Dell Inc.", Product: "PowerEdge R640"},
			Profile: "debian-12", Hostname: "web-01",
			Labels: map[string]string{"rack": "r1", "role": "web"}, Vars: map[string]string{"disk": "/dev/sda"},
			Install: &Install{Profile: "debian-12", Rule: "group dell (profiles.yaml:12)", Loader: "grub",
				Token: "tok", Started: *at(5), LastWord: at(6), Progress: "50 %", Ended: at(7),
				Outcome: "failed", Reason: "stalled", Reporter: "installer", Downloads: 3, NoCallbacks: true},
		},
		Seq: &eventSeq{Newest: 1795590000123456789, Count: 21},
	}
}

// Every field comes back exactly, from CBOR and from the JSON that older
// versions wrote; and no two fields of one struct share a CBOR key.
func TestRecordCodec(t *testing.T) {
	want := fullNode()
	b, err := encodeRecord(want)
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string][]byte{"cbor": b, "json": old} {
		var got storedNode
		if err := decodeRecord(rec, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", name, got, want)
		}
	}
	ev := Event{Time: t0.Add(42), Type: EventInstalled, IP: "198.51.100.10", Decision: DecisionLocal, Reason: "r",
		Profile: "p", Rule: "default", Loader: "ipxe", State: StateInstalled}
	eb, err := encodeRecord(ev)
	if err != nil {
		t.Fatal(err)
	}
	var gotEv Event
	if err := decodeRecord(eb, &gotEv); err != nil || !reflect.DeepEqual(gotEv, ev) {
		t.Errorf("event round trip: %+v, %v; want %+v", gotEv, err, ev)
	}
	for _, v := range []any{Node{}, Facts{}, Install{}, Event{}, eventSeq{}} {
		typ := reflect.TypeOf(v)
		keys := map[int]string{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("cbor")
			k, err := strconv.Atoi(strings.Split(tag, ",")[0])
			if err != nil || !strings.Contains(tag, "keyasint") {
				t.Errorf("%s.%s: cbor tag %q, want an integer key with keyasint", typ.Name(), f.Name, tag)
				continue
			}
			if other, dup := keys[k]; dup {
				t.Errorf("%s.%s and .%s share CBOR key %d", typ.Name(), f.Name, other, k)
			}
			keys[k] = f.Name
		}
	}
	for name, rec := range map[string][]byte{"cbor": b, "json": old} {
		var st stateOnly
		if err := decodeRecord(rec, &st); err != nil || st.State != want.State {
			t.Errorf("%s: stateOnly = %+v, %v; want state %q", name, st, err, want.State)
		}
	}
}

// A damaged record is an error, never a panic or a huge allocation.
func TestDecodeRecordDamaged(t *testing.T) {
	b, err := encodeRecord(fullNode())
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)/2],
		"not a map": {0x01},
		"json cut":  []byte(`{"mac":"52:54`),
		"huge map":  {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		var n storedNode
		if err := decodeRecord(rec, &n); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, n)
		}
	}
}

// FuzzDecodeRecord: any bytes decode to an error or to a record that
// encodes and decodes to itself. Seeds: testdata/fuzz/FuzzDecodeRecord,
// plus a record of every kind made here.
func FuzzDecodeRecord(f *testing.F) {
	full, _ := encodeRecord(fullNode())
	old, _ := json.Marshal(fullNode())
	ev, _ := encodeRecord(Event{Time: t0, IP: "198.51.100.10", Decision: DecisionLocal, State: StateLocal})
	for _, s := range [][]byte{full, old, ev, full[:10]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n storedNode
		if decodeRecord(b, &n) != nil {
			return
		}
		again, err := encodeRecord(n)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", n, err)
		}
		var m storedNode
		if err := decodeRecord(again, &m); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(n), normal(m)) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", n, m)
		}
	})
}

// normal makes records comparable after a round trip: empty and nil maps
// both encode as nothing, and times compare by instant.
func normal(n storedNode) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// The seed corpus holds real records: regenerate with
// PXE_WRITE_FUZZ_SEEDS=1 go test -run TestWriteRecordSeeds ./store/
func TestWriteRecordSeeds(t *testing.T) {
	if os.Getenv("PXE_WRITE_FUZZ_SEEDS") == "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
		if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
			t.Fatalf("seed corpus %s is missing (%v): regenerate it as this test's comment says", dir, err)
		}
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	full, _ := encodeRecord(fullNode())
	old, _ := json.Marshal(fullNode())
	small, _ := encodeRecord(storedNode{Node: newNode("52:54:00:00:00:01", t0)})
	ev, _ := encodeRecord(Event{Time: t0, IP: "198.51.100.10", Decision: DecisionLocal, State: StateLocal})
	for name, b := range map[string][]byte{"node-cbor": full, "node-json": old, "node-new": small, "event": ev, "truncated": full[:len(full)/2]} {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A database written by a version that stored JSON: every reader takes its
// records as they are, and the node's next boot rewrites its record in CBOR
// with the history intact.
func TestJSONRecordsStillRead(t *testing.T) {
	s := openT(t, t.TempDir(), Options{History: 5})
	m := mustMAC(t, "52:54:00:00:02:01")
	n := newNode(m, t0)
	n.Labels = map[string]string{"rack": "r1"}
	rec, _ := json.Marshal(n)
	ev, _ := json.Marshal(Event{Time: t0, IP: "198.51.100.9", Decision: DecisionLocal, State: StateLocal})
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(nodeKey(m), rec); err != nil {
			return err
		}
		return txn.Set(eventKey(m, t0), ev)
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(m); err != nil || got.Labels["rack"] != "r1" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if all, err := s.List(); err != nil || len(all) != 1 || all[0].MAC != m {
		t.Fatalf("List = %+v, %v", all, err)
	}
	if page, _, err := s.ListPage("", 10, Filter{Label: "rack=r1"}); err != nil || len(page) != 1 {
		t.Fatalf("ListPage = %+v, %v", page, err)
	}
	if c, err := s.Recount(); err != nil || c[StateLocal] != 1 {
		t.Fatalf("Recount = %v, %v", c, err)
	}
	if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Minute), IP: "198.51.100.10"}, localDecision); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(m)
	if err != nil || len(evs) != 2 || evs[0].IP != "198.51.100.10" || evs[1].IP != "198.51.100.9" {
		t.Fatalf("Events = %+v, %v; want the new boot, then the JSON one", evs, err)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(nodeKey(m))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if v[0] == '{' {
				t.Errorf("record after a boot is still JSON: %s", v)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(m); err != nil || got.Labels["rack"] != "r1" || got.BootCount != 1 {
		t.Fatalf("after the boot: %+v, %v", got, err)
	}
}
