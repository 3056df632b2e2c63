package store

// How node records and events are encoded in Badger.
//
// They are CBOR (RFC 8949) maps with small integer keys: the cbor struct
// tags on Node, Facts, Install, Event and eventSeq. Versions before this
// one stored JSON with the API's field names; those records are still read
// (a JSON record starts with '{', a CBOR map never does) and each is
// rewritten in CBOR by the node's next write.
//
// Why not JSON: a boot rewrites its node record and adds an event, and in a
// boot storm the JSON encoding and decoding was 14 % of the store's CPU
// (BenchmarkRecordBootStorm's profile), while the bytes it wrote (a 382-byte
// record and an 87-byte event for a typical boot, most of them field names)
// went through Badger's write-ahead log, memtable flushes and compactions,
// another quarter of the CPU. The same record is 149 bytes in CBOR and the
// event 52. Times are RFC 3339 text with nanoseconds, as in JSON, so they
// come back exactly as they went in.

import (
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

var (
	cborEnc = func() cbor.EncMode {
		m, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	cborDec = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			// Records come from our own encoder; these bound what a
			// damaged one can make the decoder allocate.
			MaxNestedLevels:  8,
			MaxArrayElements: 4096,
			MaxMapPairs:      4096,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

// stateOnly decodes only a node record's state (Recount reads every
// record); its keys are Node's (TestRecordCodec checks).
type stateOnly struct {
	State State `json:"state" cbor:"3,keyasint"`
}

func encodeRecord(v any) ([]byte, error) { return cborEnc.Marshal(v) }

// decodeRecord decodes a node record or an event, CBOR or (written by an
// older version) JSON.
func decodeRecord(b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("record is empty")
	}
	if b[0] == '{' {
		return json.Unmarshal(b, v)
	}
	return cborDec.Unmarshal(b, v)
}
