package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/sandbox"
)

// govFlags say which service to talk to and as which member.
type govFlags struct {
	workspace, address, serviceCert string
	member, certFile, keyFile       string
	json                            bool
}

func (g *govFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.workspace, "workspace", "", "workspace directory: service_cert.pem, sandbox.json (the node address) and the members' NAME_cert.pem / NAME_privk.pem")
	f.StringVar(&g.address, "address", "", "node address host:port (default: the first node in WORKSPACE/sandbox.json)")
	f.StringVar(&g.serviceCert, "service-cert", "", "service certificate PEM (default: WORKSPACE/service_cert.pem)")
	f.StringVar(&g.member, "member", "", "member NAME: its certificate and key are WORKSPACE/NAME_cert.pem and NAME_privk.pem")
	f.StringVar(&g.certFile, "cert", "", "member certificate PEM (instead of --member)")
	f.StringVar(&g.keyFile, "key", "", "member private key PEM (instead of --member)")
	f.BoolVar(&g.json, "json", false, "print the service's JSON answer instead of text")
}

// path resolves a file of the workspace.
func (g *govFlags) path(name string) string { return filepath.Join(g.workspace, name) }

func (g *govFlags) servicePEM() ([]byte, error) {
	p := g.serviceCert
	if p == "" {
		if g.workspace == "" {
			return nil, errors.New("give --workspace or --service-cert")
		}
		p = g.path("service_cert.pem")
	}
	return os.ReadFile(p)
}

func (g *govFlags) nodeAddress() (string, error) {
	if g.address != "" {
		return g.address, nil
	}
	if g.workspace == "" {
		return "", errors.New("give --workspace or --address")
	}
	raw, err := os.ReadFile(g.path(sandbox.ManifestFile))
	if err != nil {
		return "", fmt.Errorf("%w (or give --address)", err)
	}
	var m sandbox.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Nodes) == 0 {
		return "", fmt.Errorf("%s lists no node (give --address)", g.path(sandbox.ManifestFile))
	}
	return m.Nodes[0].RPCAddress, nil
}

// identity returns the member's certificate and key PEM (nil, nil if no
// member was named).
func (g *govFlags) identity() (certPEM, keyPEM []byte, err error) {
	switch {
	case g.member != "" && (g.certFile != "" || g.keyFile != ""):
		return nil, nil, errors.New("give --member or --cert/--key, not both")
	case g.member != "":
		if g.workspace == "" {
			return nil, nil, errors.New("--member NAME needs --workspace (or give --cert and --key)")
		}
		g.certFile, g.keyFile = g.path(g.member+"_cert.pem"), g.path(g.member+"_privk.pem")
	case g.certFile == "" && g.keyFile == "":
		return nil, nil, nil
	case g.certFile == "" || g.keyFile == "":
		return nil, nil, errors.New("give both --cert and --key")
	}
	if certPEM, err = os.ReadFile(g.certFile); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = os.ReadFile(g.keyFile); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// client connects to the node, as the member if one is named (needMember:
// one must be).
func (g *govFlags) client(needMember bool) (*client.Client, *client.Member, error) {
	svc, err := g.servicePEM()
	if err != nil {
		return nil, nil, err
	}
	addr, err := g.nodeAddress()
	if err != nil {
		return nil, nil, err
	}
	certPEM, keyPEM, err := g.identity()
	if err != nil {
		return nil, nil, err
	}
	var m *client.Member
	if certPEM != nil {
		if m, err = client.ParseMember(certPEM, keyPEM); err != nil {
			return nil, nil, err
		}
	} else if needMember {
		return nil, nil, errors.New("this request is signed by a member: give --member NAME (with --workspace) or --cert and --key")
	}
	c, err := client.New(client.Config{Address: addr, ServiceCertPEM: svc, CertPEM: certPEM, KeyPEM: keyPEM})
	return c, m, err
}

// readInput reads FILE, or standard input for "-".
func readInput(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
	}
	return os.ReadFile(name)
}

func newGovCmd() *cobra.Command {
	g := &govFlags{}
	cmd := &cobra.Command{Use: "gov", Short: "Govern a service as a member: propose, vote, withdraw, acknowledge"}
	g.register(cmd)
	printProposal := func(cmd *cobra.Command, p *client.Proposal) error {
		if g.json {
			return printJSON(cmd, p)
		}
		cmd.Printf("proposal %s: %s\n", p.ProposalID, p.State)
		if p.Failure != "" {
			cmd.Printf("  failure: %s\n", p.Failure)
		}
		return nil
	}
	propose := &cobra.Command{
		Use:   "propose FILE|-",
		Short: `Submit a proposal ({"actions": [{"name": ..., "args": {...}}]}) signed by the member`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			c, m, err := g.client(true)
			if err != nil {
				return err
			}
			p, err := c.Propose(cmd.Context(), m, body)
			if err != nil {
				return err
			}
			return printProposal(cmd, p)
		},
	}
	var accept, reject bool
	var ballotFile string
	vote := &cobra.Command{
		Use:   "vote ID --accept|--reject|--ballot FILE",
		Short: "Vote on a proposal: for, against, or with a JS ballot (export function vote(proposal, proposerId))",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, set := range []bool{accept, reject, ballotFile != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return errors.New("give exactly one of --accept, --reject and --ballot FILE")
			}
			c, m, err := g.client(true)
			if err != nil {
				return err
			}
			var p *client.Proposal
			if ballotFile != "" {
				src, err := readInput(cmd, ballotFile)
				if err != nil {
					return err
				}
				p, err = c.VoteBallot(cmd.Context(), m, args[0], string(src))
				if err != nil {
					return err
				}
			} else if p, err = c.Vote(cmd.Context(), m, args[0], accept); err != nil {
				return err
			}
			return printProposal(cmd, p)
		},
	}
	vote.Flags().BoolVar(&accept, "accept", false, "vote for")
	vote.Flags().BoolVar(&reject, "reject", false, "vote against")
	vote.Flags().StringVar(&ballotFile, "ballot", "", "JS ballot module (FILE or - for standard input)")
	withdraw := &cobra.Command{
		Use:   "withdraw ID",
		Short: "Withdraw a proposal (its proposer only, while it is open)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, m, err := g.client(true)
			if err != nil {
				return err
			}
			p, err := c.Withdraw(cmd.Context(), m, args[0])
			if err != nil {
				return err
			}
			return printProposal(cmd, p)
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a proposal: its actions, ballots and state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.client(false)
			if err != nil {
				return err
			}
			p, err := c.GovProposal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, p)
			}
			cmd.Printf("proposal %s: %s\n  proposer: %s\n  created:  %s\n", p.ProposalID, p.State, p.ProposerID, time.Unix(p.CreatedAt, 0).UTC().Format(time.RFC3339))
			cmd.Printf("  actions:  %s\n", p.Proposal)
			for _, id := range sortedKeys(p.Ballots) {
				b := p.Ballots[id]
				switch {
				case b.Vote != nil && *b.Vote:
					cmd.Printf("  ballot:   %s accepts\n", id)
				case b.Vote != nil:
					cmd.Printf("  ballot:   %s rejects\n", id)
				default:
					cmd.Printf("  ballot:   %s JS ballot (%d bytes)\n", id, len(b.Ballot))
				}
			}
			if p.Failure != "" {
				cmd.Printf("  failure:  %s\n", p.Failure)
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the proposals and their states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client(false)
			if err != nil {
				return err
			}
			ps, err := c.GovProposals(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, map[string]any{"proposals": ps})
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i].CreatedAt < ps[j].CreatedAt })
			for _, p := range ps {
				cmd.Printf("%s  %-9s  %s  proposer %s\n", p.ProposalID, p.State, time.Unix(p.CreatedAt, 0).UTC().Format(time.RFC3339), p.ProposerID)
			}
			return nil
		},
	}
	ack := &cobra.Command{
		Use:   "ack",
		Short: "Acknowledge membership (an Accepted member becomes Active): sign the state digest the service gives",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, m, err := g.client(true)
			if err != nil {
				return err
			}
			if err := c.Ack(cmd.Context(), m); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, map[string]string{"member_id": m.ID(), "status": "Active"})
			}
			cmd.Printf("member %s is Active\n", m.ID())
			return nil
		},
	}
	var kind, proposalID string
	sign := &cobra.Command{
		Use:   "sign --kind proposal|ballot|withdrawal|ack [--proposal ID] FILE|-",
		Short: "Sign a governance request and write it (COSE_Sign1) to standard output, e.g. for curl --data-binary @-",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			svc, err := g.servicePEM()
			if err != nil {
				return err
			}
			certPEM, keyPEM, err := g.identity()
			if err != nil {
				return err
			}
			if certPEM == nil {
				return errors.New("give --member NAME (with --workspace) or --cert and --key")
			}
			m, err := client.ParseMember(certPEM, keyPEM)
			if err != nil {
				return err
			}
			raw, err := m.Sign(svc, kind, proposalID, body, time.Now())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(raw)
			return err
		},
	}
	sign.Flags().StringVar(&kind, "kind", "", "request kind: proposal, ballot, withdrawal or ack")
	sign.Flags().StringVar(&proposalID, "proposal", "", "the proposal a ballot or withdrawal is for")
	sign.MarkFlagRequired("kind")
	cmd.AddCommand(propose, vote, withdraw, show, list, ack, sign)
	return cmd
}

func printJSON(cmd *cobra.Command, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	cmd.Println(string(out))
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
