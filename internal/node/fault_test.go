package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// memWithIdentities returns an in-memory file system holding the identity
// certificates newConfig created on disk, at the same paths.
func memWithIdentities(t *testing.T, dir string) *vfs.Mem {
	t.Helper()
	mem := vfs.NewMem()
	if err := vfs.MkdirAllSync(mem, dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"member0", "user0", "stranger"} {
		for _, suffix := range []string{"_cert.pem", "_privk.pem"} {
			p := filepath.Join(dir, name+suffix)
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := vfs.WriteFileAtomic(mem, p, raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mem
}

// TestDiskFullStopsWritesAndLosesNothing: when the ledger cannot be written
// the node refuses writes with NodeFailed, keeps serving reads, and after
// the disk is fixed every committed write is still there.
func TestDiskFullStopsWritesAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := newConfig(t, dir, "")
	mem := memWithIdentities(t, dir)
	s := startOn(t, dir, cfg, mem)
	ctx := context.Background()
	user := s.client("user0")
	var committed []ids.TxID
	for i := range 20 {
		id, err := user.LogWrite(ctx, client.Private, uint64(i), fmt.Sprint("m", i), client.WriteOptions{WaitCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		committed = append(committed, id)
	}
	mem.FailWritesAfter(0, syscall.ENOSPC)
	_, err := user.LogWrite(ctx, client.Private, 100, "no room", client.WriteOptions{WaitCommit: true})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Code != "NodeFailed" {
		t.Fatalf("write on a full disk: %v, want 503 NodeFailed", err)
	}
	if _, err := user.LogWrite(ctx, client.Public, 101, "still no room", client.WriteOptions{}); !errors.As(err, &apiErr) || apiErr.Code != "NodeFailed" {
		t.Fatalf("later write on a failed node: %v, want NodeFailed", err)
	}
	if err := user.Ready(ctx); err == nil {
		t.Fatal("failed node reports ready")
	}
	if got, err := user.LogRead(ctx, client.Private, 19); err != nil || got != "m19" {
		t.Fatalf("failed node stopped serving reads: %q, %v", got, err)
	}
	s.stop()

	mem.ClearFaults()
	image := mem.Crash(rand.New(rand.NewPCG(1, 2)))
	s2 := startOn(t, dir, cfg, image)
	user2 := s2.client("user0")
	for i, id := range committed {
		if got, err := user2.LogRead(ctx, client.Private, uint64(i)); err != nil || got != fmt.Sprint("m", i) {
			t.Fatalf("committed write %s lost after disk-full: %q, %v", id, got, err)
		}
	}
	if _, err := user2.LogWrite(ctx, client.Private, 200, "room again", client.WriteOptions{WaitCommit: true}); err != nil {
		t.Fatalf("write after the disk was fixed: %v", err)
	}
	s2.stop()
	if _, err := audit.Verify(image, cfg.Storage.LedgerDir, nil); err != nil {
		t.Fatalf("audit after disk-full: %v", err)
	}
}

// TestPowerCutAtRandomPoints takes crash images (torn, partly written,
// partly renamed) while clients write, and checks on each image that the
// node restarts, keeps every write it answered Committed, and audits clean.
func TestPowerCutAtRandomPoints(t *testing.T) {
	dir := t.TempDir()
	cfg := newConfig(t, dir, "[ledger]\nchunk_size = 4096\n")
	mem := memWithIdentities(t, dir)
	s := startOn(t, dir, cfg, mem)
	ctx := context.Background()
	user := s.client("user0")

	const writers, perWriter, cuts = 4, 60, 6
	type ack struct {
		id  uint64
		msg string
	}
	var (
		mu     sync.Mutex
		acked  []ack
		images []*vfs.Mem
		ackLen []int
	)
	rng := rand.New(rand.NewPCG(7, 7))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				id := uint64(w*1000 + i)
				msg := fmt.Sprintf("w%d-%d", w, i)
				// Every third write does not wait: it may be lost, which is
				// allowed, and makes unsynced tails likely at a cut.
				wait := i%3 != 0
				if _, err := user.LogWrite(ctx, client.Private, id, msg, client.WriteOptions{WaitCommit: wait}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				mu.Lock()
				if wait {
					acked = append(acked, ack{id, msg})
				}
				// The acknowledged set must be read before the image is
				// taken: everything acknowledged by then must survive.
				if len(images) < cuts && (w*perWriter+i)%37 == 5 {
					ackLen = append(ackLen, len(acked))
					images = append(images, mem.Crash(rng))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.stop()
	if len(images) < 3 {
		t.Fatalf("only %d crash images taken", len(images))
	}
	for k, image := range images {
		s2 := startOn(t, dir, cfg, image)
		user2 := s2.client("user0")
		for _, a := range acked[:ackLen[k]] {
			if got, err := user2.LogRead(ctx, client.Private, a.id); err != nil || got != a.msg {
				t.Fatalf("cut %d: committed write %d lost: %q, %v", k, a.id, got, err)
			}
		}
		if _, err := user2.LogWrite(ctx, client.Public, 1, "after the cut", client.WriteOptions{WaitCommit: true}); err != nil {
			t.Fatalf("cut %d: write after restart: %v", k, err)
		}
		s2.stop()
		if _, err := audit.Verify(image, cfg.Storage.LedgerDir, nil); err != nil {
			t.Fatalf("cut %d: audit: %v", k, err)
		}
	}
}
