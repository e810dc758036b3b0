package constitution

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"github.com/evanw/esbuild/pkg/api"
)

// moduleGlobal is the global variable the transformed module assigns its
// exports object to.
const moduleGlobal = "__coco_module"

// sourceName names every module in its source map, and scriptName the
// script esbuild makes of it. Errors carry positions, not names, so one name
// serves constitutions and ballots alike and the cache can be keyed by the
// source alone; the two names tell positions the source map translated
// from positions in code esbuild added (see position).
const (
	sourceName = "module.js"
	scriptName = "module.script.js"
)

// cacheSize bounds the program cache. Every ballot is a distinct source, so
// an unbounded cache would grow with the ledger; the constitution in force
// and the ballots of the open proposals are what is worth keeping.
const cacheSize = 256

// programs caches compiled sources by SHA-256 of the source text.
var programs = newProgramCache(cacheSize)

// load returns the compiled program for an ES module source, from the cache
// or by transforming it to a script (esbuild) and compiling that (goja).
func load(src string) (*goja.Program, error) {
	key := sha256.Sum256([]byte(src))
	if p := programs.get(key); p != nil {
		return p, nil
	}
	p, err := compileModule(src)
	if err != nil {
		return nil, err
	}
	programs.put(key, p)
	return p, nil
}

var errExternalSourceMap = errors.New("external source maps are not loaded")

func compileModule(src string) (*goja.Program, error) {
	// goja has no ES modules: esbuild rewrites the module into a script
	// that assigns its exports to moduleGlobal, with an inline source map
	// so that runtime positions point into the source as written. The
	// target lowers syntax newer than what goja is known to run.
	res := api.Transform(src, api.TransformOptions{
		Loader:         api.LoaderJS,
		Format:         api.FormatIIFE,
		GlobalName:     moduleGlobal,
		Target:         api.ES2020,
		Sourcefile:     sourceName,
		Sourcemap:      api.SourceMapInline,
		SourcesContent: api.SourcesContentExclude,
		LogLevel:       api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		m := res.Errors[0]
		e := &CompileError{Message: m.Text}
		if m.Location != nil {
			e.Pos = Position{Line: m.Location.Line, Column: m.Location.Column + 1}
		}
		return nil, e
	}
	// The only source map goja may read is the inline one esbuild wrote:
	// the default loader would open any file a sourceMappingURL comment
	// names.
	ast, err := goja.Parse(scriptName, string(res.Code), parser.WithSourceMapLoader(func(string) ([]byte, error) {
		return nil, errExternalSourceMap
	}))
	if err != nil {
		// esbuild accepted the syntax but goja does not support it; the
		// position would be in the transformed code, so none is given.
		return nil, &CompileError{Message: "unsupported by the script engine: " + err.Error()}
	}
	// Strict, as an ES module is.
	p, err := goja.CompileAST(ast, true)
	if err != nil {
		return nil, &CompileError{Message: err.Error()}
	}
	return p, nil
}

// programCache is a mutex-guarded LRU map of compiled programs. Programs are
// immutable and safe to run in many runtimes at once.
type programCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cacheEntry, most recently used first
	items map[[32]byte]*list.Element
}

type cacheEntry struct {
	key [32]byte
	prg *goja.Program
}

func newProgramCache(max int) *programCache {
	return &programCache{max: max, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (c *programCache) get(key [32]byte) *goja.Program {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).prg
}

func (c *programCache) put(key [32]byte, p *goja.Program) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, prg: p})
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
}
