package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
)

// Audit actions recorded by this package. Domain packages record their
// changes under the route's action (ActIncidentsAck, ActRulesWrite, ...).
const (
	AuditLogin        = "login"
	AuditLoginFailed  = "login_failed"
	AuditLoginLocked  = "login_locked" // refused with 429 by the limiter
	AuditLogout       = "logout"
	AuditRefused      = "refused" // 401 or 403 from the API guard or CSRF check
	AuditUserAdd      = "user_add"
	AuditUserChange   = "user_change"
	AuditUserSessions = "user_sessions_revoke"
	AuditPasswd       = "passwd"
	AuditTokenCreate  = "token_create"
	AuditTokenRevoke  = "token_revoke"
	AuditBootstrap    = "bootstrap_admin"
)

// Entry is one line of the audit log.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"` // user name, "token:<name>", "cli:<os user>", "rule:<id>", "system", "anonymous"
	Role   string    `json:"role,omitempty"`
	Remote string    `json:"remote_addr,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"` // "incident/42", "user/alice", "token/7"
	// Detail is stored as JSON: a map, a struct or json.RawMessage.
	Detail any `json:"detail,omitempty"`
}

// EntryFrom starts an entry for the caller of an HTTP request (from the
// request context, as api.Server sets it) and its remote address.
func EntryFrom(r *http.Request, action, target string, detail any) Entry {
	c := api.CallerFrom(r.Context())
	actor := c.Name
	if actor == "" {
		actor = "anonymous"
	}
	return Entry{Actor: actor, Role: c.Role, Remote: RemoteAddr(r), Action: action, Target: target, Detail: detail}
}

// RemoteAddr is the request's client address without the port: the one
// Service.Wrap settled on (X-Forwarded-For believed only from trusted
// proxies, see Config.TrustedProxies), else the TCP peer.
func RemoteAddr(r *http.Request) string {
	if a, ok := r.Context().Value(clientKey{}).(string); ok {
		return a
	}
	return peerAddr(r)
}

type clientKey struct{}

func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Execer is what Record needs from a pool, a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Auditor writes the audit log. It is safe for concurrent use.
type Auditor struct {
	pool *pgxpool.Pool
}

// NewAuditor returns an auditor writing through pool.
func NewAuditor(pool *pgxpool.Pool) *Auditor { return &Auditor{pool: pool} }

// maxDetail caps one entry's detail JSON.
const maxDetail = 8 << 10

// Record appends e on its own.
func (a *Auditor) Record(ctx context.Context, e Entry) error {
	return a.RecordTx(ctx, a.pool, e)
}

// RecordTx appends e through q, typically the caller's pgx.Tx, so the
// entry commits or rolls back with the change it describes.
func (a *Auditor) RecordTx(ctx context.Context, q Execer, e Entry) error {
	if e.Action == "" || e.Actor == "" {
		return errors.New("audit: entry needs an actor and an action")
	}
	detail := []byte("{}")
	if e.Detail != nil {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return fmt.Errorf("audit: detail: %w", err)
		}
		if len(b) > maxDetail {
			b, _ = json.Marshal(map[string]any{"truncated": true, "bytes": len(b)})
		}
		if string(b) != "null" {
			detail = b
		}
	}
	var at any
	if !e.At.IsZero() {
		at = e.At
	}
	_, err := q.Exec(ctx, `INSERT INTO audit_log (at, actor, actor_role, remote_addr, action, target, detail)
		VALUES (coalesce($1, clock_timestamp()), $2, $3, $4, $5, $6, $7)`,
		at, api.ClipN(e.Actor, 200), api.ClipN(e.Role, 32), api.ClipN(e.Remote, 64),
		api.ClipN(e.Action, 64), api.ClipN(e.Target, 300), detail)
	if err != nil {
		auditErrors.Inc()
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditFilter selects entries for List.
type AuditFilter struct {
	Actor, Action, Target string
	From, To              time.Time // [From, To); zero: open
	BeforeID              int64     // keyset: entries with id < BeforeID; 0: from the newest
	Limit                 int
}

// List returns entries newest first.
func (a *Auditor) List(ctx context.Context, f AuditFilter) ([]Entry, error) {
	var from, to any
	if !f.From.IsZero() {
		from = f.From
	}
	if !f.To.IsZero() {
		to = f.To
	}
	var before any
	if f.BeforeID > 0 {
		before = f.BeforeID
	}
	rows, err := a.pool.Query(ctx, `SELECT id, at, actor, actor_role, remote_addr, action, target, detail
		FROM audit_log
		WHERE ($1::text = '' OR actor = $1) AND ($2::text = '' OR action = $2) AND ($3::text = '' OR target = $3)
		  AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)
		  AND ($6::bigint IS NULL OR id < $6)
		ORDER BY id DESC LIMIT $7`, f.Actor, f.Action, f.Target, from, to, before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		var detail json.RawMessage
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Role, &e.Remote, &e.Action, &e.Target, &detail)
		e.Detail = detail
		return e, err
	})
}
