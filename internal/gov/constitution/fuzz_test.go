package constitution

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzValidate: the default constitution's validate answers every input
// with a verdict, never an error. input is tried as a whole proposal and,
// when it is JSON, as the args of action, so that the fuzzer reaches the
// argument checks and not only the JSON parser.
func FuzzValidate(f *testing.F) {
	id := testIdentity(f, "fuzz")
	for _, seed := range []struct{ input, action string }{
		{``, ``},
		{`null`, `set_member`},
		{`{}`, `trigger_ledger_rekey`},
		{`{"actions":[]}`, `remove_member`},
		{`{"actions":[{"name":"trigger_ledger_rekey"}]}`, `set_user`},
		{`{"cert":` + jsonString(id.certPEM) + `,"member_data":{"a":[1,{}]}}`, `set_member`},
		{`{"cert":"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----"}`, `set_user`},
		{`{"member_id":"` + id.id + `"}`, `remove_member`},
		{`{"platform":"virtual","measurement":"` + id.id + `"}`, `add_node_measurement`},
		{`{"recovery_threshold":1e308,"auto_trust_nodes":null}`, `set_service_configuration`},
		{`{"constitution":"export function validate(){}"}`, `set_constitution`},
		{`{"__proto__":{"x":1}}`, `__proto__`},
		{`{"actions":[{"name":"toString"}],"actions":5}`, `toString`},
		{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, `hasOwnProperty`},
		{`"\ud800"`, `set_member_data`},
	} {
		f.Add(seed.input, seed.action)
	}
	c := mustDefault(f)
	check := func(t *testing.T, proposal string) {
		v, err := c.Validate(context.Background(), proposal)
		if err != nil {
			t.Fatalf("Validate(%q): %v", proposal, err)
		}
		if !v.Valid && v.Description == "" {
			t.Fatalf("Validate(%q): invalid without a description", proposal)
		}
	}
	f.Fuzz(func(t *testing.T, input, action string) {
		check(t, input)
		if json.Valid([]byte(input)) {
			check(t, `{"actions":[{"name":`+jsonString(action)+`,"args":`+input+`}]}`)
		}
	})
}
