package node

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/ids"
)

// quoteView is one node's evidence as GET /node/quotes shows it: the
// bundle as the node presented it (base64 CBOR, what `coco attest verify
// --bundle` takes) and what verifying it, at the time the service did,
// establishes.
type quoteView struct {
	NodeID     ids.NodeID       `json:"node_id"`
	Status     string           `json:"status"`
	Platform   string           `json:"platform"`
	VerifiedAt string           `json:"verified_at,omitempty"`
	Bundle     string           `json:"bundle,omitempty"`
	Verified   *attest.Verified `json:"verified,omitempty"`
	// Error says why the bundle does not verify (it did when recorded; a
	// different build may lack the platform's verifier).
	Error string `json:"error,omitempty"`
}

func (n *Node) serveQuotes(w http.ResponseWriter, _ *http.Request) {
	out := []quoteView{}
	n.eachNode(func(id ids.NodeID, ni gov.NodeInfo) {
		q := quoteView{NodeID: id, Status: ni.Status, Platform: ni.Platform, VerifiedAt: ni.VerifiedAt, Bundle: ni.Evidence}
		defer func() { out = append(out, q) }()
		if ni.Evidence == "" {
			q.Error = "no evidence recorded"
			return
		}
		raw, err := base64.StdEncoding.DecodeString(ni.Evidence)
		if err != nil {
			q.Error = err.Error()
			return
		}
		b, err := attest.UnmarshalBundle(raw)
		if err != nil {
			q.Error = err.Error()
			return
		}
		at, err := time.Parse(time.RFC3339, ni.VerifiedAt)
		if err != nil {
			q.Error = "verified_at: " + err.Error()
			return
		}
		v, err := n.verifier.Verify(b, at)
		if err != nil {
			q.Error = err.Error()
			return
		}
		q.Verified = v
	})
	writeJSON(w, http.StatusOK, map[string]any{"quotes": out})
}
