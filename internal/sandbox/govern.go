package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoledger/coco/client"
)

// Members is how many members a sandbox's consortium has.
const Members = 3

// memberName is member i's file name prefix in the workspace.
func memberName(i int) string { return fmt.Sprintf("member%d", i) }

// consortium governs the sandbox's service as its members would: every
// request is signed by a member's key and goes through the same endpoints
// a real member uses.
type consortium struct {
	ws      string
	address string
	members []*client.Member
	clients []*client.Client // member i's TLS identity, for acknowledging
}

func newConsortium(ws, address string) (*consortium, error) {
	c := &consortium{ws: ws, address: address}
	svc, err := os.ReadFile(filepath.Join(ws, "service_cert.pem"))
	if err != nil {
		return nil, err
	}
	for i := range Members {
		name := memberName(i)
		certPEM, err := os.ReadFile(filepath.Join(ws, name+"_cert.pem"))
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(filepath.Join(ws, name+"_privk.pem"))
		if err != nil {
			return nil, err
		}
		m, err := client.ParseMember(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", name, err)
		}
		cl, err := client.New(client.Config{Address: address, ServiceCertPEM: svc, CertPEM: certPEM, KeyPEM: keyPEM})
		if err != nil {
			return nil, err
		}
		c.members, c.clients = append(c.members, m), append(c.clients, cl)
	}
	return c, nil
}

func (c *consortium) close() {
	for _, cl := range c.clients {
		cl.CloseIdleConnections()
	}
}

// open makes a new service usable: every member acknowledges its
// membership, then member0 proposes user0 as a user and the opening of
// the service, and member1 votes with it (two of three: a majority). An
// open service is left alone.
func (c *consortium) open(ctx context.Context, out func(string, ...any)) error {
	svc, err := c.clients[0].Service(ctx)
	if err != nil {
		return err
	}
	if svc.Status != "Opening" {
		return nil
	}
	for i, m := range c.members {
		if err := c.clients[i].Ack(ctx, m); err != nil {
			return fmt.Errorf("sandbox: %s acknowledges: %w", memberName(i), err)
		}
	}
	userPEM, err := os.ReadFile(filepath.Join(c.ws, "user0_cert.pem"))
	if err != nil {
		return err
	}
	p, err := c.clients[0].ProposeActions(ctx, c.members[0],
		client.Action{Name: "set_user", Args: map[string]string{"cert": string(userPEM)}},
		client.Action{Name: "transition_service_to_open", Args: map[string]any{}})
	if err != nil {
		return fmt.Errorf("sandbox: member0 proposes opening the service: %w", err)
	}
	if err := c.pass(ctx, p.ProposalID); err != nil {
		return err
	}
	out("members opened the service and added user0 (proposal %s)", p.ProposalID)
	return nil
}

// pass has member0 and member1 vote for a proposal, which must then be
// Accepted.
func (c *consortium) pass(ctx context.Context, id string) error {
	var p *client.Proposal
	var err error
	for i := range 2 {
		if p, err = c.clients[i].Vote(ctx, c.members[i], id, true); err != nil {
			return fmt.Errorf("sandbox: %s votes on %s: %w", memberName(i), id, err)
		}
	}
	if p.State != "Accepted" {
		return fmt.Errorf("sandbox: proposal %s is %s after two of three votes (%s)", id, p.State, p.Failure)
	}
	return nil
}

// trustPending proposes and accepts transition_node_to_trusted for every
// node the service lists as Pending: nodes the sandbox started, waiting
// for the members.
func (c *consortium) trustPending(ctx context.Context, out func(string, ...any)) error {
	nw, err := c.clients[0].Network(ctx)
	if err != nil {
		return err
	}
	for _, nd := range nw.Nodes {
		if nd.Status != "Pending" {
			continue
		}
		p, err := c.clients[0].ProposeActions(ctx, c.members[0], client.Action{Name: "transition_node_to_trusted", Args: map[string]string{"node_id": string(nd.NodeID)}})
		if err != nil {
			return fmt.Errorf("sandbox: member0 proposes trusting node %s: %w", nd.NodeID, err)
		}
		if err := c.pass(ctx, p.ProposalID); err != nil {
			return err
		}
		out("members trusted node %s (proposal %s)", nd.NodeID, p.ProposalID)
	}
	return nil
}

// every runs fn about every interval while waiting for something else.
type every struct {
	interval time.Duration
	last     time.Time
}

func (e *every) due(now time.Time) bool {
	if now.Sub(e.last) < e.interval {
		return false
	}
	e.last = now
	return true
}
