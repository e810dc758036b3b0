package gov

import (
	"slices"

	"github.com/cocoledger/coco/internal/kv"
)

// overlay is the constitution's view of a transaction: reads go through to
// the transaction, writes are held until flush, so that an apply that
// throws halfway leaves nothing behind. Governance tables are small, so
// Range reads the whole table.
type overlay struct {
	tx      *kv.Tx
	pending map[string]map[string]*string // table → key → value (nil: deleted)
}

func newOverlay(tx *kv.Tx) *overlay { return &overlay{tx: tx} }

func (o *overlay) Get(table, key string) (string, bool) {
	if v, ok := o.pending[table][key]; ok {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	v, ok := o.tx.Get(kv.MapName(table), []byte(key))
	return string(v), ok
}

func (o *overlay) Range(table string, fn func(key, value string) bool) {
	items, _ := o.tx.Scan(kv.MapName(table), nil, nil, 0)
	pend := o.pending[table]
	merged := make(map[string]string, len(items)+len(pend))
	for _, it := range items {
		merged[string(it.Key)] = string(it.Value)
	}
	for k, v := range pend {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn(k, merged[k]) {
			return
		}
	}
}

func (o *overlay) Put(table, key, value string) error { return o.set(table, key, &value) }

func (o *overlay) Delete(table, key string) error { return o.set(table, key, nil) }

func (o *overlay) set(table, key string, value *string) error {
	if err := kv.ValidateMapName(kv.MapName(table)); err != nil {
		return err
	}
	if err := kv.ValidateKey([]byte(key)); err != nil {
		return err
	}
	if value != nil {
		if err := kv.ValidateValue([]byte(*value)); err != nil {
			return err
		}
	}
	if o.pending == nil {
		o.pending = map[string]map[string]*string{}
	}
	if o.pending[table] == nil {
		o.pending[table] = map[string]*string{}
	}
	o.pending[table][key] = value
	return nil
}

// flush writes the held writes to the transaction, in table and key order.
func (o *overlay) flush() error {
	tables := make([]string, 0, len(o.pending))
	for t := range o.pending {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		keys := make([]string, 0, len(o.pending[t]))
		for k := range o.pending[t] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if v := o.pending[t][k]; v == nil {
				o.tx.Delete(kv.MapName(t), []byte(k))
			} else {
				o.tx.Put(kv.MapName(t), []byte(k), []byte(*v))
			}
		}
	}
	o.pending = nil
	return o.tx.Err()
}
