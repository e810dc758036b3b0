package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/cocoledger/coco/internal/kv"
)

// Tables of the logging app.
const (
	PrivateRecords kv.MapName = "records"
	PublicRecords  kv.MapName = "public:records"
)

// MaxMessageLen bounds one logged message; the node's body limit bounds the
// request as a whole.
const MaxMessageLen = 1 << 20

// LoggingApp returns the endpoints of the built-in logging app: write and
// read messages by id in a private (encrypted) and a public table, and list
// them in id order with pagination.
func LoggingApp() []Endpoint {
	var eps []Endpoint
	for _, scope := range []struct {
		name  string
		table kv.MapName
	}{{"private", PrivateRecords}, {"public", PublicRecords}} {
		table := scope.table
		eps = append(eps,
			Endpoint{Method: http.MethodPost, Path: "/app/log/" + scope.name, Auth: UserCert, Mode: ReadWrite,
				Summary: "Record a " + scope.name + " message under an id", Handler: func(c *Context) error { return logWrite(c, table) }},
			Endpoint{Method: http.MethodGet, Path: "/app/log/" + scope.name, Auth: UserCert, Mode: ReadOnly,
				Summary: "Read the " + scope.name + " message with an id", Handler: func(c *Context) error { return logRead(c, table) }},
			Endpoint{Method: http.MethodGet, Path: "/app/log/" + scope.name + "/range", Auth: UserCert, Mode: ReadOnly,
				Summary: "List " + scope.name + " messages in id order, paginated", Handler: func(c *Context) error { return logRange(c, table) }},
		)
	}
	return eps
}

type logWriteRequest struct {
	ID          *uint64 `json:"id"`
	Msg         *string `json:"msg"`
	RecordClaim bool    `json:"record_claim"`
}

func logWrite(c *Context, table kv.MapName) error {
	var in logWriteRequest
	if err := DecodeJSON(c.Req.Body, &in); err != nil {
		return err
	}
	if in.ID == nil {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, `missing field "id" (an unsigned 64-bit integer)`)
	}
	if in.Msg == nil {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, `missing field "msg" (a string)`)
	}
	if len(*in.Msg) > MaxMessageLen {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "msg is %d bytes, at most %d allowed", len(*in.Msg), MaxMessageLen)
	}
	c.Tx.Put(table, recordKey(*in.ID), []byte(*in.Msg))
	if in.RecordClaim {
		c.SetClaimsDigest(sha256.Sum256([]byte(*in.Msg)))
	}
	return nil
}

type logMessage struct {
	Msg string `json:"msg"`
}

func logRead(c *Context, table kv.MapName) error {
	id, err := QueryUint(c.Req, "id", true, 0)
	if err != nil {
		return err
	}
	v, ok := c.Tx.Get(table, recordKey(id))
	if !ok {
		return Errorf(http.StatusNotFound, CodeNotFound, "no message with id %d", id)
	}
	c.JSON(http.StatusOK, logMessage{Msg: string(v)})
	return nil
}

type logEntry struct {
	ID  uint64 `json:"id"`
	Msg string `json:"msg"`
}

type logPage struct {
	Entries []logEntry `json:"entries"`
	// Next is the "from" of the next page; absent on the last page.
	Next *uint64 `json:"next,omitempty"`
}

// maxPage bounds one page of a range read.
const maxPage = 1000

func logRange(c *Context, table kv.MapName) error {
	from, err := QueryUint(c.Req, "from", false, 0)
	if err != nil {
		return err
	}
	var end []byte
	if c.Req.Query.Has("to") {
		to, err := QueryUint(c.Req, "to", true, 0)
		if err != nil {
			return err
		}
		if to < from {
			return Errorf(http.StatusBadRequest, CodeInvalidInput, "to (%d) is below from (%d)", to, from)
		}
		end = recordKey(to)
	}
	limit, err := QueryUint(c.Req, "limit", false, 100)
	if err != nil {
		return err
	}
	if limit < 1 || limit > maxPage {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "limit must be between 1 and %d, got %d", maxPage, limit)
	}
	items, next := c.Tx.Scan(table, recordKey(from), end, int(limit))
	page := logPage{Entries: make([]logEntry, 0, len(items))}
	for _, it := range items {
		page.Entries = append(page.Entries, logEntry{ID: binary.BigEndian.Uint64(it.Key), Msg: string(it.Value)})
	}
	if next != nil {
		n := binary.BigEndian.Uint64(next)
		page.Next = &n
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// recordKey encodes an id big-endian so that key order is id order.
func recordKey(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id) }

// DecodeJSON decodes exactly one JSON object into v, refusing unknown
// fields, trailing data and invalid UTF-8, with a message that names the
// problem.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "empty body: want a JSON object")
	}
	if !utf8.Valid(body) {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "bad JSON body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(http.StatusBadRequest, CodeInvalidInput, "bad JSON body: trailing data after the object")
	}
	return nil
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q must be %s, got JSON %s", typeErr.Field, jsonTypeName(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("%v at byte %d", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return err.Error()
}

func jsonTypeName(goType string) string {
	switch goType {
	case "uint64", "*uint64":
		return "an unsigned 64-bit integer"
	case "string", "*string":
		return "a string"
	case "bool", "*bool":
		return "a boolean"
	}
	return goType
}

// QueryUint reads an unsigned decimal query parameter.
func QueryUint(r *Request, name string, required bool, def uint64) (uint64, error) {
	vals, ok := r.Query[name]
	if !ok {
		if required {
			return 0, Errorf(http.StatusBadRequest, CodeInvalidInput, "missing query parameter %q", name)
		}
		return def, nil
	}
	if len(vals) != 1 {
		return 0, Errorf(http.StatusBadRequest, CodeInvalidInput, "query parameter %q given %d times", name, len(vals))
	}
	n, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil {
		return 0, Errorf(http.StatusBadRequest, CodeInvalidInput, "query parameter %q must be an unsigned 64-bit integer, got %q", name, vals[0])
	}
	return n, nil
}
