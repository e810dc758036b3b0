package kv_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// The write path: run a handler on a fresh transaction, commit it, seal the
// ledger entry under the commit mutex, and re-run on conflict.
func ExampleRetry() {
	store := kv.NewStore()
	var ledger [][]byte
	seal := func(seqno ids.Seqno, ws *kv.WriteSet) error {
		public, private := ws.Split()
		// The caller would encrypt the private half; here both go in clear.
		entry := public.AppendBinary(nil)
		entry = private.AppendBinary(entry)
		ledger = append(ledger, entry)
		return nil
	}
	increment := func() (ids.Seqno, error) {
		var seqno ids.Seqno
		err := kv.Retry(context.Background(), 10, func() error {
			tx := store.Begin()
			v, _ := tx.Get("public:counters", []byte("visits"))
			n, _ := strconv.Atoi(string(v))
			tx.Put("public:counters", []byte("visits"), []byte(strconv.Itoa(n+1)))
			var err error
			seqno, err = store.Commit(tx, seal)
			return err
		})
		return seqno, err
	}
	for range 3 {
		if _, err := increment(); err != nil {
			fmt.Println(err)
		}
	}
	v, version, _ := store.Get("public:counters", []byte("visits"))
	fmt.Printf("visits=%s at version %d, %d ledger entries\n", v, version, len(ledger))
	fmt.Printf("last entry: %x\n", ledger[len(ledger)-1])
	// Output:
	// visits=3 at version 3, 3 ledger entries
	// last entry: 01010f7075626c69633a636f756e7465727301000676697369747301330100
}
