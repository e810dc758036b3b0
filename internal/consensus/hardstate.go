package consensus

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"go.etcd.io/raft/v3/raftpb"
)

// StateFileName is the name of the HardState file in the data directory.
const StateFileName = "raft_hardstate"

// stateVersion is the version byte of the HardState file.
const stateVersion = 1

// stateSize is the size of the HardState file:
//
//	offset  size  field
//	0       1     version  u8 = 1
//	1       8     term     u64 (big-endian, like everything here)
//	9       8     vote     u64 (raft node id; 0 = none)
//	17      8     commit   u64
//	25      4     crc32c   CRC-32C (Castagnoli) of bytes [0, 25)
const stateSize = 1 + 8 + 8 + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeHardState(hs raftpb.HardState) []byte {
	b := make([]byte, 0, stateSize)
	b = append(b, stateVersion)
	b = binary.BigEndian.AppendUint64(b, hs.Term)
	b = binary.BigEndian.AppendUint64(b, hs.Vote)
	b = binary.BigEndian.AppendUint64(b, hs.Commit)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeHardState(b []byte) (raftpb.HardState, error) {
	switch {
	case len(b) != stateSize:
		return raftpb.HardState{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadState, len(b), stateSize)
	case binary.BigEndian.Uint32(b[stateSize-4:]) != crc32.Checksum(b[:stateSize-4], castagnoli):
		return raftpb.HardState{}, fmt.Errorf("%w: checksum mismatch", ErrBadState)
	case b[0] != stateVersion:
		return raftpb.HardState{}, fmt.Errorf("%w: unknown version %d", ErrBadState, b[0])
	}
	return raftpb.HardState{
		Term:   binary.BigEndian.Uint64(b[1:]),
		Vote:   binary.BigEndian.Uint64(b[9:]),
		Commit: binary.BigEndian.Uint64(b[17:]),
	}, nil
}
