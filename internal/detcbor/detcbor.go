package detcbor

import "github.com/fxamacker/cbor/v2"

// EncMode returns the deterministic encoder. With nilAsEmpty, nil slices and
// maps encode as empty containers rather than null.
func EncMode(nilAsEmpty bool) cbor.EncMode {
	o := cbor.CoreDetEncOptions()
	if nilAsEmpty {
		o.NilContainers = cbor.NilContainerAsEmpty
	}
	m, err := o.EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	return m
}

// Limits bound what the decoder will allocate for hostile input. The CBOR
// library's minimum for MaxArrayElements and MaxMapPairs is 16.
type Limits struct {
	MaxNestedLevels  int
	MaxArrayElements int
	MaxMapPairs      int
}

// DecMode returns the strict decoder with the given limits.
func DecMode(l Limits) cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   l.MaxNestedLevels,
		MaxArrayElements:  l.MaxArrayElements,
		MaxMapPairs:       l.MaxMapPairs,
	}.DecMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	return m
}
