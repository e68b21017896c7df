package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
)

// Errors of incident changes, for errors.Is. They are the contract's
// problems (api.Fail writes them: 404 not_found, 409 version_conflict,
// 422 invalid_transition); what wraps them is safe to show.
var (
	ErrNotFound          = fmt.Errorf("incident %w", api.ErrNotFound)
	ErrVersionConflict   = fmt.Errorf("incident %w", api.ErrVersionConflict)
	ErrInvalidTransition = fmt.Errorf("transition %w", api.ErrInvalidState)
	// ErrRulesConflict: PUT /rules with an If-Match the rule set has moved past.
	ErrRulesConflict = fmt.Errorf("rule set %w", api.ErrVersionConflict)
)

// correlationLock is the advisory lock key taken by every open-or-join, so
// two instances (or two triggers) never both open an incident for one
// event ("iocalert").
const correlationLock = 0x696f63616c657274

// notifyChannel carries the seq of each committed incident event.
const notifyChannel = "ioc_incident_events"

// Store reads and changes incidents in PostgreSQL. Every change runs in one
// transaction with its timeline entry, its event and (for people) its
// audit entry. Safe for concurrent use.
type Store struct {
	events *Events // committed events go to local subscribers at once
	pool   *pgxpool.Pool
	geo    Geo
	rules  func() *RuleSet
	now    func() time.Time
	// testHook, set by tests only, runs at the start of every open-or-join
	// (a panic injected there stands for a bug in it).
	testHook func(Trigger)
}

const incidentCols = `i.id, i.kind, i.severity, i.status, i.resolution, i.title, ST_X(i.geom), ST_Y(i.geom),
	coalesce(i.ward_code, ''), i.opened_by, i.auto_resolve, i.opened_at, i.updated_at, i.acknowledged_at,
	i.dispatched_at, i.resolved_at, i.escalation_level, i.units, i.version, i.evidence_count`

func (s *Store) scanIncident(row pgx.Row) (*Incident, error) {
	var x Incident
	var ward string
	err := row.Scan(&x.ID, &x.Kind, &x.Severity, &x.Status, &x.Resolution, &x.Title,
		&x.Location.Coordinates[0], &x.Location.Coordinates[1], &ward, &x.OpenedBy, &x.AutoResolve,
		&x.OpenedAt, &x.UpdatedAt, &x.AcknowledgedAt, &x.DispatchedAt, &x.ResolvedAt, &x.EscalationLevel,
		&x.Units, &x.Version, &x.EvidenceCount)
	if err != nil {
		return nil, err
	}
	x.Location.Type = "Point"
	x.Ward = s.wardRef(ward)
	if x.Units == nil {
		x.Units = []string{}
	}
	return &x, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Get returns an incident with the first page of its evidence and of its
// timeline (EvidencePage, TimelinePage for the rest).
func (s *Store) Get(ctx context.Context, id string) (*Incident, error) {
	return s.get(ctx, s.pool, id, true)
}

// detailPage is how much evidence and timeline an incident's own answer
// carries; the rest is paged (GET /incidents/{id}/evidence, /timeline).
var detailPage = 100

func (s *Store) get(ctx context.Context, q querier, id string, details bool) (*Incident, error) {
	x, err := s.scanIncident(q.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents i WHERE i.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read incident: %w", err)
	}
	if !details {
		return x, nil
	}
	if x.Evidence, x.EvidenceNext, err = s.evidencePage(ctx, q, id, detailPage, ""); err != nil {
		return nil, err
	}
	if x.Timeline, x.TimelineNext, err = s.timelinePage(ctx, q, id, detailPage, ""); err != nil {
		return nil, err
	}
	return x, nil
}

// ErrBadCursor: a page cursor that no earlier page made.
var ErrBadCursor = &api.ParamError{Name: "cursor", Problem: "not a cursor from a previous page"}

type evidenceCursor struct {
	T time.Time `json:"t"`
	D string    `json:"d"`
	M string    `json:"m"`
}

// EvidencePage returns up to limit pieces of an incident's evidence in
// observation order, after cursor ("" from the start), and the cursor of
// the next page ("" on the last).
func (s *Store) EvidencePage(ctx context.Context, id string, limit int, cursor string) ([]Evidence, string, error) {
	return s.evidencePage(ctx, s.pool, id, limit, cursor)
}

func (s *Store) evidencePage(ctx context.Context, q querier, id string, limit int, cursor string) ([]Evidence, string, error) {
	var c *evidenceCursor
	if cursor != "" {
		c = new(evidenceCursor)
		if err := api.DecodeCursor(cursor, c); err != nil {
			return nil, "", ErrBadCursor
		}
	}
	args := []any{id, limit + 1}
	after := ``
	if c != nil {
		args = append(args, c.T, c.D, c.M)
		after = ` AND (ts, device_id, msg_id) > ($3, $4, $5)`
	}
	rows, err := q.Query(ctx, `SELECT device_id, kind, ts, msg_id, rule_id, detail, ST_X(geom), ST_Y(geom)
		FROM incident_evidence WHERE incident_id = $1`+after+` ORDER BY ts, device_id, msg_id LIMIT $2`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("read evidence: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Evidence, error) {
		var e Evidence
		var lon, lat *float64
		err := r.Scan(&e.DeviceID, &e.Kind, &e.ObservedAt, &e.MsgID, &e.Rule, &e.Detail, &lon, &lat)
		if lon != nil && lat != nil {
			e.Location = &Point{Type: "Point", Coordinates: [2]float64{*lon, *lat}}
		}
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("read evidence: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = api.EncodeCursor(evidenceCursor{last.ObservedAt, last.DeviceID, last.MsgID})
	}
	if out == nil {
		out = []Evidence{}
	}
	return out, next, nil
}

type timelineCursor struct {
	I int64 `json:"i"`
}

// TimelinePage returns up to limit timeline entries in the order they
// were written, after cursor ("" from the start), and the next cursor.
func (s *Store) TimelinePage(ctx context.Context, id string, limit int, cursor string) ([]TimelineEntry, string, error) {
	return s.timelinePage(ctx, s.pool, id, limit, cursor)
}

func (s *Store) timelinePage(ctx context.Context, q querier, id string, limit int, cursor string) ([]TimelineEntry, string, error) {
	var c timelineCursor
	if cursor != "" {
		if err := api.DecodeCursor(cursor, &c); err != nil || c.I < 0 {
			return nil, "", ErrBadCursor
		}
	}
	rows, err := q.Query(ctx, `SELECT id, at, actor, action, detail FROM incident_timeline
		WHERE incident_id = $1 AND id > $2 ORDER BY id LIMIT $3`, id, c.I, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("read timeline: %w", err)
	}
	var ids []int64
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TimelineEntry, error) {
		var t TimelineEntry
		var n int64
		err := r.Scan(&n, &t.At, &t.Actor, &t.Action, &t.Detail)
		ids = append(ids, n)
		return t, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("read timeline: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = api.EncodeCursor(timelineCursor{ids[limit-1]})
	}
	if out == nil {
		out = []TimelineEntry{}
	}
	return out, next, nil
}

func timeline(ctx context.Context, tx pgx.Tx, id string, at time.Time, actor, action string, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO incident_timeline (incident_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)`,
		id, at, actor, action, detail)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	return nil
}

// publish appends the event of x's change. The counter row stays locked
// until the transaction ends, so seq order is commit order city-wide. Call
// it last in a change's transaction, and hand the event to offer once the
// transaction has committed.
func (s *Store) publish(ctx context.Context, tx pgx.Tx, x *Incident, op string) (Event, error) {
	var b pgx.Batch
	var ev Event
	if err := s.queuePublish(&b, x, op, &ev); err != nil {
		return Event{}, err
	}
	if err := sendBatch(ctx, tx, &b); err != nil {
		return Event{}, fmt.Errorf("store event: %w", err)
	}
	return ev, nil
}

// queuePublish adds publish's statement to b; its callback fills *ev.
func (s *Store) queuePublish(b *pgx.Batch, x *Incident, op string, ev *Event) error {
	body, err := json.Marshal(x)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	*ev = Event{Op: op, At: s.now(), Incident: body}
	// The notification carries the event itself ("<seq> <json without
	// seq>"), so listeners need not read it back; one too long for NOTIFY
	// carries the seq alone.
	note, err := json.Marshal(*ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if len(note) > maxNotifyBody {
		note = nil
	}
	// Take the next seq, store the event and notify, in one statement.
	b.Queue(`WITH s AS (UPDATE incident_seq SET seq = seq + 1 RETURNING seq),
		     e AS (INSERT INTO incident_events (seq, at, incident_id, op, incident)
		           SELECT seq, $1, $2, $3, $4 FROM s RETURNING seq)
		SELECT seq, pg_notify($5, seq::text || coalesce(' ' || $6::text, ''))::text FROM e`,
		ev.At, x.ID, op, body, notifyChannel, nullString(note)).QueryRow(func(row pgx.Row) error {
		var notified string
		if err := row.Scan(&ev.Seq, &notified); err != nil {
			return fmt.Errorf("store event: %w", err)
		}
		metricEvents.Inc()
		return nil
	})
	return nil
}

// publishID reads incident id and publishes its change.
func (s *Store) publishID(ctx context.Context, tx pgx.Tx, id, op string) (Event, error) {
	x, err := s.get(ctx, tx, id, false)
	if err != nil {
		return Event{}, err
	}
	return s.publish(ctx, tx, x, op)
}

// maxNotifyBody keeps a notification under PostgreSQL's 8000-byte limit.
const maxNotifyBody = 7900

func nullString(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// offer hands committed events to this instance's subscribers at once;
// other instances learn of them through NOTIFY.
func (s *Store) offer(evs ...Event) {
	if s.events == nil {
		return
	}
	for _, ev := range evs {
		s.events.Offer(ev)
	}
}

// outbox queues a notification about x in the change's transaction.
func (s *Store) outbox(ctx context.Context, tx pgx.Tx, x *Incident, reason string, extra map[string]any) error {
	var b pgx.Batch
	s.queueOutbox(&b, x, reason, extra)
	if err := sendBatch(ctx, tx, &b); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func (s *Store) queueOutbox(b *pgx.Batch, x *Incident, reason string, extra map[string]any) {
	payload := map[string]any{"reason": reason, "incident": x}
	for k, v := range extra {
		payload[k] = v
	}
	b.Queue(`WITH o AS (INSERT INTO alert_outbox (created_at, incident_id, reason, payload, next_at)
			VALUES ($1, $2, $3, $4, $1) RETURNING id)
		SELECT pg_notify('ioc_alert_outbox', '') FROM o`, s.now(), x.ID, reason, payload).Exec(noTag)
}

// noTag is the callback of a batched statement whose only result is
// success or its error.
func noTag(pgconn.CommandTag) error { return nil }

func (s *Store) notifyWorthy(sev string) bool {
	min := s.rules().Notify.MinSeverity
	if min == "" {
		min = "severe"
	}
	return sevRank(sev) >= sevRank(min)
}

// Apply records a trigger: opens an incident or joins an open one of a
// compatible kind nearby (evidence keyed by observation, so a replay adds
// nothing), or clears a condition. It returns the incident's id ("" for a
// clear) and whether anything changed.
func (s *Store) Apply(ctx context.Context, t Trigger) (string, bool, error) {
	if t.Clear {
		return "", false, s.clearCondition(ctx, t)
	}
	var id string
	var ev *Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, ev, err = s.apply(ctx, tx, t)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("apply trigger of rule %s: %w", t.Rule, err)
	}
	if ev != nil {
		s.offer(*ev)
	}
	return id, ev != nil, nil
}

// apply records trigger t in tx (see Apply); the event is nil when
// nothing changed. Emergency signals come here inside ingest's own
// transaction (Engine.InTx), so it keeps round trips few: every step is
// one pipelined batch of statements, each read by its own callback.
func (s *Store) apply(ctx context.Context, tx pgx.Tx, t Trigger) (string, *Event, error) {
	if s.testHook != nil {
		s.testHook(t)
	}
	n := len(t.Evidence)
	devs, tss, msgs := make([]string, n), make([]time.Time, n), make([]string, n)
	for i, e := range t.Evidence {
		devs[i], tss[i], msgs[i] = e.DeviceID, e.ObservedAt, e.MsgID
	}
	rs := s.rules()
	corr := rs.correlationFor(t.Kind)

	// Step 1: the correlation lock, the evidence already recorded (a
	// replay or a redelivery) and the open incident this would join.
	// Evidence is written only under the lock, so what is not known now
	// is new.
	known := map[int]string{} // evidence index: the incident holding it
	var cur struct{ id, kind, sev string }
	open := false
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(correlationLock)).Exec(noTag)
	b.Queue(`SELECT k.i, e.incident_id FROM incident_evidence e
		JOIN unnest($1::text[], $2::timestamptz[], $3::text[]) WITH ORDINALITY AS k(d, t, m, i)
		  ON e.device_id = k.d AND e.ts = k.t AND e.msg_id = k.m`,
		devs, tss, msgs).Query(func(rows pgx.Rows) error {
		var i int
		var inc string
		_, err := pgx.ForEachRow(rows, []any{&i, &inc}, func() error {
			known[i-1] = inc
			return nil
		})
		return err
	})
	b.Queue(`SELECT id, kind, severity FROM incidents
		WHERE status <> 'resolved' AND kind = ANY($1) AND last_evidence_at >= $2
		  AND geom && ST_Expand(ST_SetSRID(ST_MakePoint($3, $4), 4326), $5 * 1.02 / (111000 * cos(radians($4))), $5 * 1.02 / 111000)
		  AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, $5, false)
		ORDER BY ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography, false), opened_at
		LIMIT 1 FOR UPDATE`,
		corr.Joins, t.At.Add(-corr.Window.Std()), t.Lon, t.Lat, corr.RadiusM).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&cur.id, &cur.kind, &cur.sev)
		if errors.Is(err, pgx.ErrNoRows) {
			open, err = true, nil
		}
		return err
	})
	if err := sendBatch(ctx, tx, &b); err != nil {
		return "", nil, fmt.Errorf("correlate: %w", err)
	}
	if len(known) == n {
		if t.Condition && n > 0 {
			// A replayed trigger after a replayed clear: the condition holds again.
			if err := s.holdCondition(ctx, tx, t, known[0]); err != nil {
				return "", nil, err
			}
		}
		metricReplayed.Inc()
		return known[0], nil, nil
	}

	// Step 2: open the incident, or update the one joined; the new
	// evidence, the timeline, the condition it holds. (Times to the
	// microsecond, as PostgreSQL keeps them.)
	now := s.now().Truncate(time.Microsecond)
	actor := "rule:" + t.Rule
	id, kind, sev := cur.id, cur.kind, cur.sev
	var added []map[string]any
	for i, e := range t.Evidence {
		if _, ok := known[i]; !ok {
			added = append(added, map[string]any{"device_id": e.DeviceID, "kind": e.Kind, "observed_at": e.ObservedAt})
		}
	}
	action := "opened"
	detail := map[string]any{"kind": t.Kind, "severity": t.Severity, "evidence": added}
	b = pgx.Batch{}
	ward := t.Ward
	if open {
		id = newID(now)
		if ward == "" && s.geo != nil {
			ward, _ = s.geo.Ward(t.Lon, t.Lat)
		}
		var wardArg any
		if ward != "" {
			wardArg = ward
		}
		b.Queue(`INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by,
				auto_resolve, opened_at, updated_at, last_evidence_at)
			VALUES ($1, $2, $3, 'new', $4, ST_SetSRID(ST_MakePoint($5, $6), 4326), $7, $8, $9, $10, $10, $11)`,
			id, t.Kind, t.Severity, t.Title, t.Lon, t.Lat, wardArg, actor, t.Condition, now, t.At).Exec(noTag)
	} else {
		if rs.rank(t.Kind) > rs.rank(cur.kind) {
			kind = t.Kind
		}
		if rs.JoinRaisesSeverity && sevRank(t.Severity) > sevRank(cur.sev) {
			sev = t.Severity
		}
		action = "evidence_added"
		detail = map[string]any{"evidence": added, "rule": t.Rule}
		if kind != cur.kind {
			detail["kind"] = map[string]string{"from": cur.kind, "to": kind}
		}
		if sev != cur.sev {
			detail["severity"] = map[string]string{"from": cur.sev, "to": sev}
		}
		// Evidence alone does not move the version an operator's
		// If-Match names (docs/alerts.md, "Versions"): only a kind or a
		// severity the operator has not seen yet does.
		b.Queue(`UPDATE incidents SET kind = $2, severity = $3, auto_resolve = auto_resolve AND $4,
				last_evidence_at = greatest(last_evidence_at, $5), updated_at = $6,
				version = version + CASE WHEN kind <> $2 OR severity <> $3 THEN 1 ELSE 0 END
			WHERE id = $1`,
			id, kind, sev, t.Condition, t.At, now).Exec(noTag)
	}
	for i, e := range t.Evidence {
		if _, ok := known[i]; !ok {
			queueEvidence(&b, id, t.Rule, e, now)
		}
	}
	b.Queue(`INSERT INTO incident_timeline (incident_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)`,
		id, now, actor, action, detail).Exec(noTag)
	if t.Condition {
		b.Queue(holdConditionSQL, t.Rule, t.DeviceID, id, t.At).Exec(noTag)
	}
	// The incident as it now is, for the notification and the event: a
	// new one is known here to the field, so both go in this same round
	// trip; a joined one is read back first (TestBuiltIncidentMatchesStored
	// holds the two to the same result).
	var x *Incident
	var ev Event
	if open {
		x = &Incident{ID: id, Kind: t.Kind, Severity: t.Severity, Status: StatusNew, Title: t.Title,
			Location: Point{Type: "Point", Coordinates: [2]float64{t.Lon, t.Lat}}, Ward: s.wardRef(ward),
			OpenedBy: actor, AutoResolve: t.Condition, OpenedAt: now, UpdatedAt: now, Units: []string{},
			Version: 1, EvidenceCount: len(added)}
		if err := s.queueFinish(&b, x, t, true, &ev); err != nil {
			return "", nil, err
		}
	} else {
		b.Queue(`SELECT `+incidentCols+` FROM incidents i WHERE i.id = $1`, id).QueryRow(func(row pgx.Row) (err error) {
			x, err = s.scanIncident(row)
			return err
		})
	}
	if err := sendBatch(ctx, tx, &b); err != nil {
		if open {
			return "", nil, fmt.Errorf("open incident: %w", err)
		}
		return "", nil, fmt.Errorf("join incident: %w", err)
	}
	if open {
		return id, &ev, nil
	}

	// Step 3, for a joined incident: its event.
	b = pgx.Batch{}
	if err := s.queueFinish(&b, x, t, false, &ev); err != nil {
		return "", nil, err
	}
	if err := sendBatch(ctx, tx, &b); err != nil {
		return "", nil, fmt.Errorf("join incident: %w", err)
	}
	return id, &ev, nil
}

// queueFinish adds to b the last statements of open-or-join: the
// notification of a new incident worth one, and the event (into *ev).
func (s *Store) queueFinish(b *pgx.Batch, x *Incident, t Trigger, opened bool, ev *Event) error {
	op := "updated"
	if opened {
		op = "opened"
		if s.notifyWorthy(t.Severity) {
			s.queueOutbox(b, x, "opened", nil)
		}
		metricOpened.WithLabelValues(t.Kind).Inc()
	} else {
		metricJoined.WithLabelValues(t.Kind).Inc()
	}
	return s.queuePublish(b, x, op, ev)
}

// wardRef names a ward code ("" is none).
func (s *Store) wardRef(code string) *WardRef {
	if code == "" {
		return nil
	}
	w := &WardRef{Code: code}
	if s.geo != nil {
		w.Name = s.geo.WardName(code)
	}
	return w
}

// sendBatch sends b in one round trip; each statement's callback reads
// its own result, and the first error is returned.
func sendBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	return tx.SendBatch(ctx, b).Close()
}

// queueEvidence adds the insert of one piece of evidence to b.
func queueEvidence(b *pgx.Batch, id, rule string, e Evidence, now time.Time) {
	var lon, lat any
	if e.Location != nil {
		lon, lat = e.Location.Coordinates[0], e.Location.Coordinates[1]
	}
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	b.Queue(`INSERT INTO incident_evidence (incident_id, device_id, ts, msg_id, kind, rule_id, added_at, detail, geom)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9::float8 IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint($9, $10), 4326) END)
		ON CONFLICT DO NOTHING`, id, e.DeviceID, e.ObservedAt, e.MsgID, e.Kind, rule, now, detail, lon, lat).Exec(noTag)
}

const holdConditionSQL = `INSERT INTO incident_conditions (rule_id, device_id, incident_id, active, changed_at)
	VALUES ($1, $2, $3, true, $4)
	ON CONFLICT (rule_id, device_id, incident_id) DO UPDATE SET active = true, changed_at = EXCLUDED.changed_at, resolve_after = NULL
	WHERE incident_conditions.changed_at <= EXCLUDED.changed_at`

func (s *Store) holdCondition(ctx context.Context, tx pgx.Tx, t Trigger, id string) error {
	if _, err := tx.Exec(ctx, holdConditionSQL, t.Rule, t.DeviceID, id, t.At); err != nil {
		return fmt.Errorf("condition: %w", err)
	}
	return nil
}

func (s *Store) clearCondition(ctx context.Context, t Trigger) error {
	_, err := s.pool.Exec(ctx, `UPDATE incident_conditions SET active = false, changed_at = $3, resolve_after = $4
		WHERE rule_id = $1 AND device_id = $2 AND active AND changed_at <= $3`,
		t.Rule, t.DeviceID, t.At, t.At.Add(t.ClearFor))
	if err != nil {
		return fmt.Errorf("clear condition %s/%s: %w", t.Rule, t.DeviceID, err)
	}
	return nil
}

// activeConditions lists the conditions that hold open incidents, so a
// restarted engine knows which windows had already fired.
func (s *Store) activeConditions(ctx context.Context) (map[[2]string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.rule_id, c.device_id, max(c.changed_at) FROM incident_conditions c
		JOIN incidents i ON i.id = c.incident_id WHERE c.active AND i.status <> 'resolved' GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("active conditions: %w", err)
	}
	out := map[[2]string]time.Time{}
	var r, d string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&r, &d, &at}, func() error {
		out[[2]string{r, d}] = at
		return nil
	})
	return out, err
}

// ResolveCleared resolves the auto-resolving incidents whose conditions
// have all cleared for their rule's clear_for. It returns how many.
func (s *Store) ResolveCleared(ctx context.Context) (int, error) {
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT i.id FROM incidents i
		WHERE i.status <> 'resolved' AND i.auto_resolve
		  AND EXISTS (SELECT 1 FROM incident_conditions c WHERE c.incident_id = i.id)
		  AND NOT EXISTS (SELECT 1 FROM incident_conditions c WHERE c.incident_id = i.id AND (c.active OR c.resolve_after > $1))`, now)
	if err != nil {
		return 0, fmt.Errorf("find cleared incidents: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find cleared incidents: %w", err)
	}
	n := 0
	for _, id := range ids {
		var ev Event
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var rule string
			err := tx.QueryRow(ctx, `SELECT coalesce((SELECT rule_id FROM incident_conditions WHERE incident_id = i.id LIMIT 1), '')
				FROM incidents i WHERE id = $1 AND status <> 'resolved' AND auto_resolve
				  AND NOT EXISTS (SELECT 1 FROM incident_conditions c WHERE c.incident_id = i.id AND (c.active OR c.resolve_after > $2))
				FOR UPDATE`, id, now).Scan(&rule)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // changed meanwhile
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE incidents SET status = 'resolved', resolution = 'handled', resolved_at = $2,
				updated_at = $2, version = version + 1 WHERE id = $1`, id, now); err != nil {
				return err
			}
			if err := timeline(ctx, tx, id, now, "rule:"+rule, "resolved", map[string]any{
				"resolution": "handled", "reason": "condition cleared"}); err != nil {
				return err
			}
			n++
			metricAutoResolved.Inc()
			ev, err = s.publishID(ctx, tx, id, "resolved")
			return err
		})
		if err != nil {
			return n, fmt.Errorf("resolve %s: %w", id, err)
		}
		if ev.Seq > 0 {
			s.offer(ev)
		}
	}
	return n, nil
}

// Escalate raises the incidents nobody acknowledged in time: a timeline
// entry, the severity up one step (if the rules say so) and a notification.
func (s *Store) Escalate(ctx context.Context) (int, error) {
	rs := s.rules()
	esc := rs.Escalation
	if len(esc.After) == 0 {
		return 0, nil
	}
	maxSteps := esc.MaxSteps
	if maxSteps == 0 {
		maxSteps = 1
	}
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT id, severity, escalation_level, coalesce(escalated_at, opened_at)
		FROM incidents WHERE status = 'new' AND escalation_level < $1`, maxSteps)
	if err != nil {
		return 0, fmt.Errorf("find incidents to escalate: %w", err)
	}
	type due struct {
		id, sev string
		level   int
		since   time.Time
	}
	var all []due
	var d due
	if _, err := pgx.ForEachRow(rows, []any{&d.id, &d.sev, &d.level, &d.since}, func() error {
		all = append(all, d)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("find incidents to escalate: %w", err)
	}
	n := 0
	for _, d := range all {
		after, ok := esc.After[d.sev]
		if !ok || now.Sub(d.since) < after.Std() {
			continue
		}
		var ev Event
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var sev string
			var level int
			err := tx.QueryRow(ctx, `SELECT severity, escalation_level FROM incidents WHERE id = $1 AND status = 'new' AND escalation_level = $2 FOR UPDATE`,
				d.id, d.level).Scan(&sev, &level)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			newSev := sev
			if esc.RaiseSeverity && sevRank(sev) < len(severities)-1 {
				newSev = severities[sevRank(sev)+1]
			}
			// The version moves only if the severity does: the level
			// alone changes nothing an operator's action depends on.
			if _, err := tx.Exec(ctx, `UPDATE incidents SET severity = $2, escalation_level = escalation_level + 1, escalated_at = $3,
				updated_at = $3, version = version + CASE WHEN severity <> $2 THEN 1 ELSE 0 END WHERE id = $1`, d.id, newSev, now); err != nil {
				return err
			}
			detail := map[string]any{"level": level + 1, "unacknowledged_for": now.Sub(d.since).Round(time.Second).String()}
			if newSev != sev {
				detail["severity"] = map[string]string{"from": sev, "to": newSev}
			}
			if err := timeline(ctx, tx, d.id, now, "system", "escalated", detail); err != nil {
				return err
			}
			x, err := s.get(ctx, tx, d.id, false)
			if err != nil {
				return err
			}
			if err := s.outbox(ctx, tx, x, "escalated", map[string]any{"level": level + 1}); err != nil {
				return err
			}
			n++
			metricEscalated.Inc()
			ev, err = s.publish(ctx, tx, x, "updated")
			return err
		})
		if err != nil {
			return n, fmt.Errorf("escalate %s: %w", d.id, err)
		}
		if ev.Seq > 0 {
			s.offer(ev)
		}
	}
	return n, nil
}

// Change is a person's action on an incident.
type Change struct {
	Action     string   // ack, dispatch, resolve, reopen, comment
	Actor      string   // user name
	IfVersion  int64    // 0: unconditional (comments only)
	UnitIDs    []string // dispatch
	Resolution string   // resolve
	Note       string   // resolve
	Text       string   // comment
	// Visible reports whether the caller may see the incident's ward; an
	// incident outside is reported as not found.
	Visible func(ward string) bool
	// Audit, called inside the transaction, records the change.
	Audit func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error
}

// Act applies a person's change with optimistic concurrency.
func (s *Store) Act(ctx context.Context, id string, c Change) (*Incident, error) {
	var out *Incident
	var ev Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status, ward string
		var version int64
		var units []string
		err := tx.QueryRow(ctx, `SELECT status, coalesce(ward_code, ''), version, units FROM incidents WHERE id = $1 FOR UPDATE`, id).
			Scan(&status, &ward, &version, &units)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && c.Visible != nil && !c.Visible(ward)) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if c.IfVersion != 0 && c.IfVersion != version {
			return fmt.Errorf("%w: incident is at version %d, not %d", ErrVersionConflict, version, c.IfVersion)
		}
		now := s.now()
		detail := map[string]any{}
		op := "updated"
		var q string
		args := []any{id, now}
		switch c.Action {
		case "ack":
			if status != StatusNew {
				return fmt.Errorf("%w: cannot acknowledge an incident that is %s", ErrInvalidTransition, status)
			}
			q = `status = 'acknowledged', acknowledged_at = $2`
		case "dispatch":
			if status == StatusResolved {
				return fmt.Errorf("%w: cannot dispatch to a resolved incident", ErrInvalidTransition)
			}
			merged := slices.Clone(units)
			for _, u := range c.UnitIDs {
				if !slices.Contains(merged, u) {
					merged = append(merged, u)
				}
			}
			q = `status = 'dispatched', dispatched_at = coalesce(dispatched_at, $2), acknowledged_at = coalesce(acknowledged_at, $2), units = $3`
			args = append(args, merged)
			detail["unit_ids"] = c.UnitIDs
		case "resolve":
			if status == StatusResolved {
				return fmt.Errorf("%w: the incident is already resolved", ErrInvalidTransition)
			}
			q = `status = 'resolved', resolution = $3, resolved_at = $2, auto_resolve = false`
			args = append(args, c.Resolution)
			detail["resolution"] = c.Resolution
			if c.Note != "" {
				detail["note"] = c.Note
			}
			op = "resolved"
		case "reopen":
			if status != StatusResolved {
				return fmt.Errorf("%w: only a resolved incident can be reopened (it is %s)", ErrInvalidTransition, status)
			}
			q = `status = 'acknowledged', resolution = NULL, resolved_at = NULL, auto_resolve = false,
				acknowledged_at = coalesce(acknowledged_at, $2)`
		case "comment":
			// A comment changes no state an If-Match protects: it leaves
			// the version, so it never makes someone's ack a conflict.
			q = `kind = kind`
			detail["text"] = c.Text
		default:
			return fmt.Errorf("%w: unknown action %q", ErrInvalidTransition, c.Action)
		}
		if c.Action != "comment" {
			q += `, version = version + 1`
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET `+q+`, updated_at = $2 WHERE id = $1`, args...); err != nil {
			return fmt.Errorf("%s incident: %w", c.Action, err)
		}
		action := map[string]string{"ack": "acknowledged", "dispatch": "dispatched", "resolve": "resolved",
			"reopen": "reopened", "comment": "commented"}[c.Action]
		if err := timeline(ctx, tx, id, now, c.Actor, action, detail); err != nil {
			return err
		}
		if c.Audit != nil {
			if err := c.Audit(ctx, tx, id, detail); err != nil {
				return err
			}
		}
		if ev, err = s.publishID(ctx, tx, id, op); err != nil {
			return err
		}
		out, err = s.get(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.offer(ev)
	return out, nil
}

// Manual is an incident opened by hand (a phone call).
type Manual struct {
	Kind     string  `json:"kind"`
	Severity string  `json:"severity"`
	Title    string  `json:"title"`
	Note     string  `json:"note"`
	Lon, Lat float64 `json:"-"`
	Ward     string  `json:"-"`
}

// Open stores a hand-made incident. People-raised incidents never resolve
// themselves and do not join others (the dispatcher decided).
func (s *Store) Open(ctx context.Context, m Manual, actor string, audit func(ctx context.Context, tx pgx.Tx, id string, detail map[string]any) error) (*Incident, error) {
	var out *Incident
	var ev Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.now()
		id := newID(now)
		var wardArg any
		if m.Ward != "" {
			wardArg = m.Ward
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by,
				auto_resolve, opened_at, updated_at, last_evidence_at)
			VALUES ($1, $2, $3, 'new', $4, ST_SetSRID(ST_MakePoint($5, $6), 4326), $7, $8, false, $9, $9, $9)`,
			id, m.Kind, m.Severity, m.Title, m.Lon, m.Lat, wardArg, actor, now); err != nil {
			return fmt.Errorf("open incident: %w", err)
		}
		detail := map[string]any{"kind": m.Kind, "severity": m.Severity}
		if m.Note != "" {
			detail["note"] = m.Note
		}
		if err := timeline(ctx, tx, id, now, actor, "opened", detail); err != nil {
			return err
		}
		if audit != nil {
			if err := audit(ctx, tx, id, detail); err != nil {
				return err
			}
		}
		x, err := s.get(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if s.notifyWorthy(m.Severity) {
			if err := s.outbox(ctx, tx, x, "opened", nil); err != nil {
				return err
			}
		}
		metricOpened.WithLabelValues(m.Kind).Inc()
		if ev, err = s.publish(ctx, tx, x, "opened"); err != nil {
			return err
		}
		out, err = s.get(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.offer(ev)
	return out, nil
}
