package auth

import (
	"slices"
	"sort"

	"ioc/api"
)

// Roles (CONTRACT section 5).
const (
	RoleOperator   = "operator"   // watch, acknowledge, comment
	RoleDispatcher = "dispatcher" // operator + open, dispatch, resolve, reopen
	RoleAnalyst    = "analyst"    // read history, stats, exports; no changes
	RoleAdmin      = "admin"      // everything
)

// Roles lists every role, least to most powerful.
var Roles = []string{RoleOperator, RoleDispatcher, RoleAnalyst, RoleAdmin}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Actions: what a route does, named on registration with api.Server.Handle.
// Handlers that change something also use the action as the audit entry's
// Action. An action not in this list is refused for everyone.
const (
	ActSelf = "session:self" // whoami, logout, change own password: any signed-in caller

	ActDevicesRead   = "devices:read"
	ActDevicesWrite  = "devices:write"
	ActTelemetryRead = "telemetry:read"
	ActUnitsRead     = "units:read"
	ActRejectsRead   = "rejects:read"
	ActAreasRead     = "areas:read"
	ActOGCRead       = "ogc:read"
	ActWSSubscribe   = "ws:subscribe"

	ActGeofencesRead  = "geofences:read"
	ActGeofencesWrite = "geofences:write"
	ActRulesRead      = "rules:read"
	ActRulesWrite     = "rules:write"

	ActIncidentsRead     = "incidents:read"
	ActIncidentsOpen     = "incidents:open"
	ActIncidentsAck      = "incidents:ack"
	ActIncidentsDispatch = "incidents:dispatch"
	ActIncidentsResolve  = "incidents:resolve"
	ActIncidentsReopen   = "incidents:reopen"
	ActIncidentsComment  = "incidents:comment"

	ActStatsRead   = "stats:read"
	ActExportRead  = "export:read"
	ActMetricsRead = "metrics:read"

	ActAuditRead   = "audit:read"
	ActUsersAdmin  = "users:admin"
	ActTokensAdmin = "tokens:admin"
)

// Action describes one action for the policy table, docs and tests.
type Action struct {
	Name  string
	Roles []string
	// Global actions touch city-wide data that cannot be cut by ward
	// (accounts, the audit log, rules, raw rejected payloads, metrics), so a
	// ward-scoped caller is refused them whatever the role.
	Global bool
	Doc    string
}

var (
	watchers = []string{RoleOperator, RoleDispatcher, RoleAnalyst, RoleAdmin}
	movers   = []string{RoleDispatcher, RoleAdmin}
	ackers   = []string{RoleOperator, RoleDispatcher, RoleAdmin}
	readers  = []string{RoleAnalyst, RoleAdmin}
	admins   = []string{RoleAdmin}
)

// policy is the one table mapping actions to roles.
var policy = map[string]Action{
	ActSelf: {Roles: watchers, Doc: "see own account, log out, change own password"},

	ActDevicesRead:   {Roles: watchers, Doc: "list devices and their latest state"},
	ActTelemetryRead: {Roles: watchers, Doc: "a device's readings over time"},
	ActUnitsRead:     {Roles: watchers, Doc: "responder positions and status"},
	ActAreasRead:     {Roles: watchers, Doc: "ward boundaries"},
	ActOGCRead:       {Roles: watchers, Doc: "OGC API Features (GIS clients)"},
	ActWSSubscribe:   {Roles: watchers, Doc: "live map stream on /ws"},
	ActGeofencesRead: {Roles: watchers, Doc: "list geofences"},
	ActRulesRead:     {Roles: watchers, Doc: "see the alert rules"},
	ActIncidentsRead: {Roles: watchers, Doc: "list and open incidents, nearest units"},

	ActIncidentsAck:     {Roles: ackers, Doc: "acknowledge an incident"},
	ActIncidentsComment: {Roles: ackers, Doc: "comment on an incident"},

	ActIncidentsOpen:     {Roles: movers, Doc: "open an incident by hand (a phone call)"},
	ActIncidentsDispatch: {Roles: movers, Doc: "assign units to an incident"},
	ActIncidentsResolve:  {Roles: movers, Doc: "resolve an incident"},
	ActIncidentsReopen:   {Roles: movers, Doc: "reopen a resolved incident"},

	ActStatsRead:   {Roles: readers, Doc: "incident statistics"},
	ActExportRead:  {Roles: readers, Doc: "GeoJSON, CSV and CAP exports"},
	ActRejectsRead: {Roles: readers, Global: true, Doc: "rejected ingest messages (raw payloads)"},
	ActMetricsRead: {Roles: readers, Global: true, Doc: "Prometheus metrics"},

	ActGeofencesWrite: {Roles: admins, Doc: "create, change, delete geofences"},
	ActDevicesWrite:   {Roles: admins, Global: true, Doc: "register devices and remove registrations (require_registered_devices)"},
	ActRulesWrite:     {Roles: admins, Global: true, Doc: "change the alert rules"},
	ActAuditRead:      {Roles: admins, Global: true, Doc: "read the audit log"},
	ActUsersAdmin:     {Roles: admins, Global: true, Doc: "manage accounts and their sessions"},
	ActTokensAdmin:    {Roles: admins, Global: true, Doc: "manage API tokens"},
}

// Actions lists the policy table sorted by name.
func Actions() []Action {
	out := make([]Action, 0, len(policy))
	for name, a := range policy {
		a.Name = name
		a.Roles = slices.Clone(a.Roles)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KnownAction reports whether action is in the policy table.
func KnownAction(action string) bool { _, ok := policy[action]; return ok }

// Policy is the api.Policy of the operations centre.
type Policy struct{}

// Allow reports whether c may perform action. Unknown actions and unknown
// roles are refused.
func (Policy) Allow(c api.Caller, action string) bool {
	a, ok := policy[action]
	if !ok {
		return false
	}
	if a.Global && c.Scoped() {
		return false
	}
	return slices.Contains(a.Roles, c.Role)
}

// AllowedActions lists what c may do, for the dashboard to show only the
// buttons that will work.
func AllowedActions(c api.Caller) []string {
	var out []string
	for _, a := range Actions() {
		if (Policy{}).Allow(c, a.Name) {
			out = append(out, a.Name)
		}
	}
	return out
}
