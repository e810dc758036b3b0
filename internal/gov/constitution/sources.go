package constitution

import (
	_ "embed"
	"strings"
)

var (
	//go:embed default.js
	defaultSource string
	//go:embed veto.js
	vetoSource string
)

// DefaultSource returns the default constitution: a strict majority of the
// active members decides. See default.js for its actions.
func DefaultSource() string { return defaultSource }

// VetoSource returns a sample constitution: the default one, but active
// members whose member_data has "veto": true must all vote for a proposal,
// and any one of them rejects it by voting against. veto.js holds its
// resolve; the rest is the default constitution's, from its resolve marker
// on.
func VetoSource() string {
	return vetoSource + defaultSource[strings.Index(defaultSource, resolveMarker)+len(resolveMarker):]
}

// resolveMarker ends the resolve section of the shipped constitutions.
const resolveMarker = "// ---- end resolve ----\n"
