package kv

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what the store accepts. They bound the memory one write, and
// hence one decoded ledger entry, can demand, and they are part of the wire
// format: DecodeWriteSet rejects anything Put would have rejected.
const (
	// MaxMapNameLen is the longest map name, in bytes.
	MaxMapNameLen = 256
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 64 << 10
	// MaxValueLen is the longest value, in bytes.
	MaxValueLen = 16 << 20
)

// PublicPrefix marks a map whose writes go to the ledger in clear.
const PublicPrefix = "public:"

// MapName names one ordered map of the store.
type MapName string

// IsPublic reports whether the map's writes are recorded in the ledger in
// clear; all other maps are private and their writes are encrypted by the
// caller.
func (m MapName) IsPublic() bool { return strings.HasPrefix(string(m), PublicPrefix) }

// ValidateMapName reports whether m may name a map: 1 to MaxMapNameLen bytes
// of valid UTF-8 without control characters, so that names print safely in
// logs, JSON and error messages.
func ValidateMapName(m MapName) error {
	switch {
	case m == "":
		return fmt.Errorf("%w: empty", ErrInvalidMapName)
	case len(m) > MaxMapNameLen:
		return fmt.Errorf("%w: %d bytes, limit is %d", ErrInvalidMapName, len(m), MaxMapNameLen)
	case !utf8.ValidString(string(m)):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidMapName, m)
	}
	if i := strings.IndexFunc(string(m), unicode.IsControl); i >= 0 {
		return fmt.Errorf("%w %q: control character at byte %d", ErrInvalidMapName, m, i)
	}
	return nil
}

// ValidateKey reports whether key may be stored: at most MaxKeyLen bytes.
// The empty key is valid.
func ValidateKey(key []byte) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, limit is %d", ErrKeyTooLarge, len(key), MaxKeyLen)
	}
	return nil
}

// ValidateValue reports whether value may be stored: at most MaxValueLen
// bytes. The empty value is valid and distinct from an absent key.
func ValidateValue(value []byte) error {
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: %d bytes, limit is %d", ErrValueTooLarge, len(value), MaxValueLen)
	}
	return nil
}
