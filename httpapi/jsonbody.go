package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// bodyError is why a request body was refused: the HTTP status to answer
// with (400, or 413 for a body over its limit) and a message for the user.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// bodyStatus is the status to answer a decodeOneJSON error with.
func bodyStatus(err error) int {
	if be, ok := err.(*bodyError); ok {
		return be.status
	}
	return http.StatusBadRequest
}

// jsonSpace is the white space JSON allows between tokens (RFC 8259).
const jsonSpace = " \t\r\n"

// decodeOneJSON reads the whole body, at most limit bytes, and decodes it
// into v: exactly one JSON value, unknown fields refused, nothing but JSON
// white space after it. Reading everything first is what makes the
// "exactly one" check hold: a decoder over a cut-off reader stops at the
// cut, and whatever follows 5,000 spaces is never seen. A body over the
// limit is refused (413) without being decoded.
func decodeOneJSON(r *http.Request, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return &bodyError{http.StatusBadRequest, "reading the body failed: " + err.Error()}
	}
	if int64(len(data)) > limit {
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes: send one JSON object of at most %d bytes", limit, limit)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &bodyError{http.StatusBadRequest, jsonProblem(err)}
	}
	rest := data[dec.InputOffset():]
	if trimmed := bytes.TrimLeft(rest, jsonSpace); len(trimmed) > 0 {
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("the body must hold exactly one JSON object, but more follows it at byte %d", len(data)-len(trimmed))}
	}
	return nil
}
