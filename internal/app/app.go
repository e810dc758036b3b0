package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/kv"
)

// Governance tables that authentication reads (internal/gov defines them).
// They are public: who may use the service is part of the auditable record.
const (
	UsersTable            = gov.UsersTable
	MembersTable          = gov.MembersTable
	NodesTable            = gov.NodesTable
	ServiceInfoTable      = gov.ServiceInfoTable
	NodeMeasurementsTable = gov.NodeMeasurementsTable
)

// Stable error codes. Clients may switch on them; messages are for people.
const (
	CodeInvalidInput       = "InvalidInput"
	CodeInvalidTxID        = "InvalidTransactionId"
	CodePayloadTooLarge    = "PayloadTooLarge"
	CodeUnsupportedMedia   = "UnsupportedMediaType"
	CodeNotFound           = "ResourceNotFound"
	CodeMethodNotAllowed   = "MethodNotAllowed"
	CodeMissingCert        = "MissingClientCertificate"
	CodeUnknownCaller      = "UnknownCaller"
	CodeForbidden          = "Forbidden"
	CodeConflict           = "TransactionConflict"
	CodeTxInvalid          = "TransactionInvalid"
	CodeTxUnknown          = "TransactionUnknown"
	CodeCommitTimeout      = "CommitTimeout"
	CodeNodeFailed         = "NodeFailed"
	CodeServiceUnavailable = "ServiceUnavailable"
	CodeJoinRefused        = "JoinRefused"
	CodeInternal           = "InternalError"
	// CodeServiceNotOpen: the members have not opened the service yet;
	// application endpoints wait for transition_service_to_open.
	CodeServiceNotOpen = "ServiceNotOpen"

	// Governance refusals.
	CodeBadSignature       = "InvalidSignature"
	CodeWrongService       = "WrongService"
	CodeStaleRequest       = "StaleRequest"
	CodeReplayedRequest    = "ReplayedRequest"
	CodeInvalidProposal    = "InvalidProposal"
	CodeProposalNotOpen    = "ProposalNotOpen"
	CodeAckMismatch        = "AcknowledgementMismatch"
	CodeConstitutionFailed = "ConstitutionFailed"
)

// Error is the error model of every endpoint: an HTTP status, a stable code
// and a message that says precisely what is wrong. It is served as
// {"error": {"code": …, "message": …}}.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("app: %d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AuthPolicy says who may call an endpoint.
type AuthPolicy uint8

// Authentication policies.
const (
	// NoAuth: anyone who completes the TLS handshake.
	NoAuth AuthPolicy = iota
	// UserCert: a client certificate listed in UsersTable.
	UserCert
	// MemberCert: a client certificate listed in MembersTable.
	MemberCert
)

// Role is the kind of caller an authenticated request came from.
type Role uint8

// Caller roles.
const (
	RoleAnonymous Role = iota
	RoleUser
	RoleMember
)

// Caller is the authenticated identity of a request.
type Caller struct {
	Role Role
	// ID is the UserID or MemberID (hex SHA-256 of the DER certificate).
	ID   string
	Cert *x509.Certificate
}

// Mode says whether an endpoint may write.
type Mode uint8

// Endpoint modes.
const (
	ReadOnly Mode = iota
	ReadWrite
)

// Request is what a handler sees of the HTTP request. Body is already
// bounded by the node's size limit.
type Request struct {
	// Ctx is the request's context: done when the client goes away.
	Ctx    context.Context
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	Caller Caller
	// Params are the values of the endpoint's path parameters.
	Params Params
}

// Context is one execution of a handler against one transaction.
type Context struct {
	Tx  *kv.Tx
	Req *Request

	claims    [32]byte
	hasClaims bool
	status    int
	body      any
}

// NewContext prepares a handler execution.
func NewContext(tx *kv.Tx, req *Request) *Context { return &Context{Tx: tx, Req: req} }

// SetClaimsDigest binds an application claim to the transaction: it becomes
// the third component of the transaction's Merkle leaf and of its receipt.
func (c *Context) SetClaimsDigest(d [32]byte) { c.claims, c.hasClaims = d, true }

// ClaimsDigest returns the claims digest (all zeros when none was set).
func (c *Context) ClaimsDigest() [32]byte { return c.claims }

// JSON sets the response: status and a value encoded as JSON (nil: no body).
func (c *Context) JSON(status int, v any) { c.status, c.body = status, v }

// Response returns what the handler set (200 and no body by default).
func (c *Context) Response() (int, any) {
	if c.status == 0 {
		return http.StatusOK, c.body
	}
	return c.status, c.body
}

// Handler executes an endpoint. Returning an *Error answers with it; any
// other error is an internal error.
type Handler func(c *Context) error

// Endpoint is one registered route. Path is exact ("/app/log/public") or
// a template whose segments may be parameters ("/gov/proposals/{id}"): a
// parameter matches one non-empty segment, and an exact path wins over a
// template.
type Endpoint struct {
	Method  string
	Path    string
	Auth    AuthPolicy
	Mode    Mode
	Summary string
	Handler Handler
}

// Params are the values of a matched template's parameters, by name.
type Params map[string]string

// Registry maps method and path to endpoints.
type Registry struct {
	byPath    map[string]map[string]*Endpoint // exact paths and templates, by path as registered
	templates []template                      // the templated paths, in registration order
	order     []*Endpoint
}

type template struct {
	path     string
	segments []string // "{name}" for a parameter
}

// NewRegistry returns a registry holding eps. Duplicate routes and
// malformed templates are programmer errors and panic.
func NewRegistry(eps ...Endpoint) *Registry {
	r := &Registry{byPath: map[string]map[string]*Endpoint{}}
	for i := range eps {
		ep := eps[i]
		m := r.byPath[ep.Path]
		if m == nil {
			m = map[string]*Endpoint{}
			r.byPath[ep.Path] = m
			if strings.ContainsAny(ep.Path, "{}") {
				r.templates = append(r.templates, parseTemplate(ep.Path))
			}
		}
		if _, dup := m[ep.Method]; dup {
			panic(fmt.Sprintf("app: duplicate endpoint %s %s", ep.Method, ep.Path))
		}
		m[ep.Method] = &ep
		r.order = append(r.order, &ep)
	}
	return r
}

func parseTemplate(path string) template {
	t := template{path: path, segments: strings.Split(path, "/")}
	seen := map[string]bool{}
	for _, seg := range t.segments {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}")
		if len(name)+2 != len(seg) || name == "" || strings.ContainsAny(name, "{}") || seen[name] {
			panic(fmt.Sprintf("app: malformed path template %q", path))
		}
		seen[name] = true
	}
	return t
}

// match returns the parameters if path fits the template.
func (t template) match(path string) (Params, bool) {
	var params Params
	rest := path
	for i, seg := range t.segments {
		got, tail, more := strings.Cut(rest, "/")
		if more != (i < len(t.segments)-1) {
			return nil, false
		}
		rest = tail
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			if got == "" {
				return nil, false
			}
			if params == nil {
				params = Params{}
			}
			params[strings.TrimSuffix(name, "}")] = got
			continue
		}
		if got != seg {
			return nil, false
		}
	}
	return params, true
}

// Lookup finds the endpoint for method and path, with the values of its
// template's parameters (nil for an exact path). When the path exists
// with other methods it returns nil and those methods.
func (r *Registry) Lookup(method, path string) (*Endpoint, Params, []string) {
	route, params, ok := r.route(path)
	if !ok {
		return nil, nil, nil
	}
	m := r.byPath[route]
	if ep, ok := m[method]; ok {
		return ep, params, nil
	}
	allowed := make([]string, 0, len(m))
	for meth := range m {
		allowed = append(allowed, meth)
	}
	slices.Sort(allowed)
	return nil, nil, allowed
}

// Route returns the registered path (exact, or the template) that path
// matches, whatever the method: a label of bounded cardinality.
func (r *Registry) Route(path string) (string, bool) {
	route, _, ok := r.route(path)
	return route, ok
}

func (r *Registry) route(path string) (string, Params, bool) {
	if _, ok := r.byPath[path]; ok && !strings.ContainsAny(path, "{}") {
		return path, nil, true
	}
	for _, t := range r.templates {
		if p, ok := t.match(path); ok {
			return t.path, p, true
		}
	}
	return "", nil, false
}

// Endpoints lists the endpoints in registration order.
func (r *Registry) Endpoints() []*Endpoint { return r.order }
