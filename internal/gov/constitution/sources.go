package constitution

import _ "embed"

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
// and any one of them rejects it by voting against.
func VetoSource() string { return vetoSource }
