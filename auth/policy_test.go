package auth

import (
	"os"
	"slices"
	"strings"
	"testing"

	"ioc/api"
)

// The expected matrix is written out from CONTRACT section 5 by hand, not
// derived from the policy table, so a change to the table has to be made
// twice on purpose.
func TestPolicyMatchesContract(t *testing.T) {
	o, d, a, A := RoleOperator, RoleDispatcher, RoleAnalyst, RoleAdmin
	want := map[string][]string{
		ActSelf:              {o, d, a, A},
		ActDevicesRead:       {o, d, a, A},
		ActTelemetryRead:     {o, d, a, A},
		ActUnitsRead:         {o, d, a, A},
		ActAreasRead:         {o, d, a, A},
		ActOGCRead:           {o, d, a, A},
		ActWSSubscribe:       {o, d, a, A},
		ActGeofencesRead:     {o, d, a, A},
		ActRulesRead:         {o, d, a, A},
		ActIncidentsRead:     {o, d, a, A},
		ActIncidentsAck:      {o, d, A},
		ActIncidentsComment:  {o, d, A},
		ActIncidentsOpen:     {d, A},
		ActIncidentsDispatch: {d, A},
		ActIncidentsResolve:  {d, A},
		ActIncidentsReopen:   {d, A},
		ActStatsRead:         {a, A},
		ActExportRead:        {a, A},
		ActRejectsRead:       {a, A},
		ActMetricsRead:       {a, A},
		ActGeofencesWrite:    {A},
		ActRulesWrite:        {A},
		ActAuditRead:         {A},
		ActUsersAdmin:        {A},
		ActTokensAdmin:       {A},
		ActDevicesWrite:      {A},
	}
	if len(want) != len(Actions()) {
		t.Errorf("policy has %d actions, the contract matrix %d", len(Actions()), len(want))
	}
	for action, roles := range want {
		for _, role := range append(slices.Clone(Roles), "", "root", "Admin") {
			got := Policy{}.Allow(api.Caller{Name: "x", Role: role}, action)
			if got != slices.Contains(roles, role) {
				t.Errorf("%s by %q: allowed=%v", action, role, got)
			}
		}
	}
	for _, unknown := range []string{"", "incidents:delete", "users:read", "*", "devices:read "} {
		if (Policy{}).Allow(api.Caller{Role: RoleAdmin}, unknown) {
			t.Errorf("unknown action %q allowed to admin", unknown)
		}
	}
}

func TestGlobalActionsRefuseWardScopedCallers(t *testing.T) {
	scopedAdmin := api.Caller{Name: "x", Role: RoleAdmin, Wards: []string{"00004"}}
	for _, a := range Actions() {
		got := Policy{}.Allow(scopedAdmin, a.Name)
		if got == a.Global {
			t.Errorf("%s (global=%v) for a ward-scoped admin: allowed=%v", a.Name, a.Global, got)
		}
	}
	for _, act := range []string{ActUsersAdmin, ActTokensAdmin, ActAuditRead, ActRulesWrite, ActRejectsRead, ActDevicesWrite} {
		if (Policy{}).Allow(scopedAdmin, act) {
			t.Errorf("%s allowed to a ward-scoped admin", act)
		}
	}
}

// docs/security.md lists every action with its roles.
func TestActionsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Actions() {
		var row string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "| `"+a.Name+"` |") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("%s not in the action table of docs/security.md", a.Name)
			continue
		}
		cells := strings.Split(row, "|")
		for i, role := range Roles {
			if got, want := strings.TrimSpace(cells[2+i]) == "✓", slices.Contains(a.Roles, role); got != want {
				t.Errorf("docs/security.md: %s for %s says %v, policy %v", a.Name, role, got, want)
			}
		}
		if got := strings.TrimSpace(cells[6]) == "✓"; got != a.Global {
			t.Errorf("docs/security.md: %s global says %v, policy %v", a.Name, got, a.Global)
		}
	}
}
