package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/receipt"
)

// Scope selects the logging app's private (encrypted in the ledger) or
// public (in clear) table.
type Scope string

// The two tables of the logging app.
const (
	Private Scope = "private"
	Public  Scope = "public"
)

func logPath(s Scope) (string, error) {
	switch s {
	case Private, Public:
		return "/app/log/" + string(s), nil
	}
	return "", fmt.Errorf("%w %q: want client.Private or client.Public", ErrBadScope, string(s))
}

// WriteOptions tunes LogWrite.
type WriteOptions struct {
	// RecordClaim asks the app to bind a digest of the message to the
	// transaction as its claim, so a receipt also proves the message.
	RecordClaim bool
	// WaitCommit makes the node answer only once the transaction is
	// committed; the node answers an error if it became Invalid or its wait
	// timed out.
	WaitCommit bool
}

type writeRequest struct {
	ID          uint64 `json:"id"`
	Msg         string `json:"msg"`
	RecordClaim bool   `json:"record_claim,omitempty"`
}

// txIDHeader is the canonical form of "x-coco-txid", so the header map is
// read without re-canonicalising on every write.
const txIDHeader = "X-Coco-Txid"

// LogWrite stores msg under id in the logging app and returns the TxID of
// the write. Without WaitCommit the transaction has executed but may still
// be lost; see WaitCommitted.
func (c *Client) LogWrite(ctx context.Context, scope Scope, id uint64, msg string, opt WriteOptions) (TxID, error) {
	path, err := logPath(scope)
	if err != nil {
		return TxID{}, err
	}
	if opt.WaitCommit {
		path += "?wait=commit"
	}
	body, err := json.Marshal(writeRequest{ID: id, Msg: msg, RecordClaim: opt.RecordClaim})
	if err != nil {
		return TxID{}, fmt.Errorf("client: encode write: %w", err)
	}
	var tx TxID
	err = c.call(ctx, http.MethodPost, path, body, func(r *http.Response) error {
		// The header is authoritative and saves decoding the body.
		if h := r.Header[txIDHeader]; len(h) > 0 {
			var err error
			tx, err = parseWireTxID(h[0])
			return err
		}
		var doc txIDDoc
		if err := decodeBody(r, &doc); err != nil {
			return err
		}
		var err error
		tx, err = parseWireTxID(doc.TransactionID)
		return err
	})
	return tx, err
}

type txIDDoc struct {
	TransactionID string `json:"transaction_id"`
}

// LogRead returns the message stored under id; a missing entry is an error
// matching ErrNotFound.
func (c *Client) LogRead(ctx context.Context, scope Scope, id uint64) (string, error) {
	path, err := logPath(scope)
	if err != nil {
		return "", err
	}
	var doc struct {
		Msg *string `json:"msg"`
	}
	if _, err := c.Do(ctx, http.MethodGet, path+"?id="+strconv.FormatUint(id, 10), nil, &doc); err != nil {
		return "", err
	}
	if doc.Msg == nil {
		return "", fmt.Errorf("client: GET %s: %w: no \"msg\"", path, ErrBadResponse)
	}
	return *doc.Msg, nil
}

// TxStatus is the commit status of a transaction as a node sees it.
type TxStatus = ids.TxStatus

// Transaction statuses. Unknown means the node has not seen the TxID (yet);
// Pending means executed but not committed; Invalid is final and means the
// transaction will never commit.
const (
	StatusUnknown   = ids.StatusUnknown
	StatusPending   = ids.StatusPending
	StatusCommitted = ids.StatusCommitted
	StatusInvalid   = ids.StatusInvalid
)

// TxStatus asks the node for the status of id.
func (c *Client) TxStatus(ctx context.Context, id TxID) (TxStatus, error) {
	path := "/node/tx?transaction_id=" + id.String()
	var doc struct {
		Status TxStatus `json:"status"`
	}
	if _, err := c.Do(ctx, http.MethodGet, path, nil, &doc); err != nil {
		return "", err
	}
	switch doc.Status {
	case StatusUnknown, StatusPending, StatusCommitted, StatusInvalid:
		return doc.Status, nil
	}
	return "", fmt.Errorf("client: GET %s: %w: status %q", path, ErrBadResponse, string(doc.Status))
}

// Commit returns the TxID of the last committed transaction the node knows.
func (c *Client) Commit(ctx context.Context) (TxID, error) {
	var doc txIDDoc
	if _, err := c.Do(ctx, http.MethodGet, "/node/commit", nil, &doc); err != nil {
		return TxID{}, err
	}
	tx, err := parseWireTxID(doc.TransactionID)
	if err != nil {
		return TxID{}, fmt.Errorf("client: GET /node/commit: %w", err)
	}
	return tx, nil
}

// Network describes the service and its nodes as one node sees them.
type Network struct {
	ServiceStatus      string     `json:"service_status"`
	ServiceCertificate string     `json:"service_certificate"` // PEM
	CurrentView        ids.View   `json:"current_view"`
	Nodes              []NodeInfo `json:"nodes"`
}

// NodeInfo is one node of the Network.
type NodeInfo struct {
	NodeID     ids.NodeID `json:"node_id"`
	RPCAddress string     `json:"rpc_address"`
	Status     string     `json:"status"`
	Primary    bool       `json:"primary"`
}

// Network fetches the service status and node list.
func (c *Client) Network(ctx context.Context) (*Network, error) {
	var n Network
	if _, err := c.Do(ctx, http.MethodGet, "/node/network", nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Ready returns nil once the node serves requests.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Do(ctx, http.MethodGet, "/node/ready", nil, nil)
	return err
}

// Receipt fetches the receipt of a committed transaction; verify it with
// its Verify method and the service certificate. It returns an error
// matching ErrPending while id is not yet committed, and one matching
// ErrNotFound for an Unknown or Invalid id.
func (c *Client) Receipt(ctx context.Context, id TxID) (*receipt.Receipt, error) {
	path := "/app/receipt?transaction_id=" + id.String()
	var r *receipt.Receipt
	err := c.call(ctx, http.MethodGet, path, nil, func(resp *http.Response) error {
		if resp.StatusCode == http.StatusAccepted {
			return fmt.Errorf("%w: %s", ErrPending, id)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: status %d", ErrBadResponse, resp.StatusCode)
		}
		// ParseJSON bounds the size it accepts; reading one byte more lets
		// it report an oversized receipt instead of a truncated one.
		b, err := io.ReadAll(io.LimitReader(resp.Body, receipt.MaxJSONSize+1))
		if err != nil {
			return fmt.Errorf("%w: reading receipt: %v", ErrBadResponse, err)
		}
		if r, err = receipt.ParseJSON(b); err != nil {
			return fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		if r.TransactionID != id.String() {
			return fmt.Errorf("%w: asked for the receipt of %s, got one for %s", ErrBadResponse, id, r.TransactionID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Polling bounds of WaitCommitted: start fast because commit usually takes a
// few milliseconds, back off so that a slow commit costs the node little.
const (
	pollFirst = 2 * time.Millisecond
	pollMax   = 200 * time.Millisecond
)

// WaitCommitted polls the node until id is committed. It returns an error
// matching ErrInvalid if id will never commit, and ctx's error when ctx ends
// first, so ctx must carry the caller's bound.
func (c *Client) WaitCommitted(ctx context.Context, id TxID) error {
	delay := pollFirst
	for {
		st, err := c.TxStatus(ctx, id)
		if err != nil {
			return err
		}
		switch st {
		case StatusCommitted:
			return nil
		case StatusInvalid:
			return fmt.Errorf("%w: %s", ErrInvalid, id)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: waiting for %s to commit (last status %s): %w", id, st, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, pollMax)
	}
}
