// Package vfs is Coco's file-system boundary: the small set of file
// operations the ledger and the node's durable files need, behind an
// interface, so that tests can simulate crashes, torn writes and disk errors.
//
// Two implementations:
//
//   - [OS] is the real file system. SyncDir opens the directory and fsyncs it,
//     which is what makes a create, rename or remove durable on Linux.
//   - [Mem] is an in-memory file system that records what has been made
//     durable. [Mem.Crash] returns the image a power cut could leave behind,
//     and [Mem.FailWritesAfter] / [Mem.FailSyncsAfter] / [Mem.FailNameChanges]
//     inject I/O errors.
//
// # Durability model (what Mem simulates and OS code must assume)
//
//   - File content is durable only up to the last successful File.Sync.
//     Writes after it may survive in order up to some point, the first one
//     not surviving may be torn (a prefix of it survives), and the torn bytes
//     may read back as zeros (the file size reached the disk, the data did
//     not). Later writes are lost.
//   - A directory entry (create, rename, remove, mkdir) is durable only after
//     SyncDir of the directory holding it. Before that, a crash keeps some
//     prefix, in order, of the directory's changes since its last SyncDir.
//     File.Sync does not make the file's name durable.
//   - A rename within one directory is atomic: after a crash the file has the
//     old name or the new one, never both or neither. Mem models a rename
//     across directories as an add in one and a remove in the other, each
//     subject to its own directory's SyncDir.
//
// Mem's model is a strict but realistic reading of POSIX plus ext4/xfs
// behaviour. It does not model a failed fsync dropping dirty pages (Linux
// "fsyncgate"); callers must not retry fsync after an error anyway.
//
// # Invariants
//
// Paths use the host separator for OS; Mem accepts either separator and
// cleans paths, treating relative paths as relative to its root. All errors
// about a path are *fs.PathError or *fs.LinkError wrapping the same sentinels
// as the os package (fs.ErrNotExist, fs.ErrExist, fs.ErrClosed, …), so
// errors.Is works identically on both implementations.
//
// # Concurrency
//
// FS implementations are safe for concurrent use. A File is safe for
// concurrent ReadAt with any other call; concurrent Write calls on one File
// are serialised but their order is unspecified. Mem serialises all
// operations under one mutex: it is built for correctness tests, not speed.
package vfs
