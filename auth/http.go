package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ioc/api"
)

// Register adds the security routes to srv.
func (s *Service) Register(srv *api.Server) {
	srv.HandlePublic("POST", "/api/v1/login", http.HandlerFunc(s.login))
	srv.Handle("POST", "/api/v1/logout", ActSelf, s.logout)
	srv.Handle("GET", "/api/v1/me", ActSelf, s.me)
	srv.Handle("POST", "/api/v1/me/password", ActSelf, s.changeOwnPassword)

	srv.Handle("GET", "/api/v1/users", ActUsersAdmin, s.listUsers)
	srv.Handle("POST", "/api/v1/users", ActUsersAdmin, s.addUser)
	srv.Handle("GET", "/api/v1/users/{name}", ActUsersAdmin, s.getUser)
	srv.Handle("PATCH", "/api/v1/users/{name}", ActUsersAdmin, s.changeUser)
	srv.Handle("DELETE", "/api/v1/users/{name}/sessions", ActUsersAdmin, s.revokeUserSessions)

	srv.Handle("GET", "/api/v1/tokens", ActTokensAdmin, s.listTokens)
	srv.Handle("POST", "/api/v1/tokens", ActTokensAdmin, s.createToken)
	srv.Handle("DELETE", "/api/v1/tokens/{id}", ActTokensAdmin, s.revokeToken)

	srv.Handle("GET", "/api/v1/audit", ActAuditRead, s.listAudit)
}

type userJSON struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	Wards []string `json:"wards"`
}

type loginAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userJSON  `json:"user"`
}

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name     *string `json:"name"`
		Password *string `json:"password"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		logins.WithLabelValues("bad_request").Inc()
		api.Fail(w, r, err)
		return
	}
	name, err := loginInput(body.Name, body.Password)
	if err != nil {
		logins.WithLabelValues("bad_request").Inc()
		api.Fail(w, r, err)
		return
	}
	addr := RemoteAddr(r)
	// The attempt is booked before the password is checked, so requests
	// sent together cannot all slip past the limiter.
	at, wait := s.limiter.reserve(name, addr)
	if at == nil {
		logins.WithLabelValues("locked").Inc()
		s.recordLogin(r, AuditLoginLocked, name, nil, nil)
		api.Fail(w, r, lockedOut(wait))
		return
	}
	u, reason, err := s.Store.CheckLogin(r.Context(), name, *body.Password)
	if errors.Is(err, ErrBadCredentials) {
		logins.WithLabelValues("failed").Inc()
		delayed := at.failed()
		known := reason != "unknown_user"
		s.recordLogin(r, AuditLoginFailed, name, &known, map[string]any{"reason": reason, "delayed": delayed})
		api.Fail(w, r, ErrBadCredentials)
		return
	}
	if err != nil {
		at.cancel()
		if errors.Is(err, ErrBusy) {
			logins.WithLabelValues("busy").Inc()
		}
		api.Fail(w, r, err)
		return
	}
	at.succeeded()
	sess, err := s.Store.NewSession(r.Context(), u, s.cfg.SessionTTL, addr, r.UserAgent())
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	logins.WithLabelValues("ok").Inc()
	s.record(r, Entry{Actor: u.Name, Role: u.Role, Remote: addr, Action: AuditLogin, Target: "user/" + u.Name})
	http.SetCookie(w, &http.Cookie{
		Name: s.cfg.CookieName, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode,
	})
	api.JSON(w, http.StatusOK, loginAnswer{Token: sess.Token, ExpiresAt: sess.ExpiresAt,
		User: userJSON{Name: u.Name, Role: u.Role, Wards: u.Wards}})
}

// loginInput checks a login body's fields and returns the normalised name.
func loginInput(name, password *string) (string, error) {
	switch {
	case name == nil || *name == "":
		return "", &api.ParamError{Name: "name", Problem: "required"}
	case password == nil || *password == "":
		return "", &api.ParamError{Name: "password", Problem: "required"}
	case len(*password) > MaxPasswordLen:
		return "", &api.ParamError{Name: "password", Problem: fmt.Sprintf("at most %d bytes", MaxPasswordLen)}
	}
	return NormalizeName("name", *name)
}

// lockedOut is the 429 for an account (or address) that must wait.
func lockedOut(wait time.Duration) error {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &api.Problem{Status: http.StatusTooManyRequests, Code: "locked_out",
		Message: fmt.Sprintf("too many failed sign-ins; try again in %d s", secs), RetryAfter: secs}
}

// UnknownUser is the audit target of a sign-in with a name no account
// has: what was typed is often a password, so it is not stored. Detail
// name_tag (a keyed hash, per process) tells repeats of one name apart.
const UnknownUser = "user/(unknown)"

// recordLogin audits a sign-in refusal (throttled). The name typed is
// kept only if it is an account's; known is nil when the password was not
// checked, and then the accounts table says.
func (s *Service) recordLogin(r *http.Request, action, name string, known *bool, detail map[string]any) {
	s.recordThrottled(r, func() Entry {
		isUser := false
		if known != nil {
			isUser = *known
		} else if ok, err := s.Store.Exists(r.Context(), name); err == nil {
			isUser = ok
		}
		target := "user/" + name
		if !isUser {
			target = UnknownUser
			if detail == nil {
				detail = map[string]any{}
			}
			detail["name_tag"] = s.nameTag(name)
		}
		e := Entry{Remote: RemoteAddr(r), Action: action, Target: target}
		if detail != nil {
			e.Detail = detail
		}
		return e
	})
}

func (s *Service) nameTag(name string) string {
	m := hmac.New(sha256.New, s.nameKey)
	m.Write([]byte(name))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

func (s *Service) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: s.cfg.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode})
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	token, _ := s.credential(r)
	if !strings.HasPrefix(token, sessionPrefix) {
		api.Error(w, http.StatusBadRequest, "not_a_session", "API tokens are revoked by an admin (DELETE /api/v1/tokens/{id})")
		return
	}
	if err := s.Store.RevokeSession(r.Context(), token); err != nil {
		api.Fail(w, r, err)
		return
	}
	s.clearCookie(w, r)
	c := api.CallerFrom(r.Context())
	s.record(r, EntryFrom(r, AuditLogout, "user/"+c.Name, nil))
	w.WriteHeader(http.StatusNoContent)
}

type meAnswer struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Wards   []string `json:"wards"`
	Via     string   `json:"via"` // "session" or "token"
	Actions []string `json:"actions"`
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) {
	c := api.CallerFrom(r.Context())
	via := "session"
	if strings.HasPrefix(c.Name, "token:") {
		via = "token"
	}
	api.JSON(w, http.StatusOK, meAnswer{Name: c.Name, Role: c.Role, Wards: c.Wards, Via: via, Actions: AllowedActions(c)})
}

// ErrWrongPassword answers a password change whose current password is
// wrong.
var ErrWrongPassword = api.NewProblem(http.StatusForbidden, "wrong_password", "current password is wrong")

func (s *Service) changeOwnPassword(w http.ResponseWriter, r *http.Request) {
	c := api.CallerFrom(r.Context())
	if strings.HasPrefix(c.Name, "token:") {
		api.Error(w, http.StatusBadRequest, "not_a_session", "API tokens have no password")
		return
	}
	var body struct {
		Current *string `json:"current"`
		New     *string `json:"new"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		api.Fail(w, r, err)
		return
	}
	if body.Current == nil || *body.Current == "" || len(*body.Current) > MaxPasswordLen {
		api.Fail(w, r, &api.ParamError{Name: "current", Problem: fmt.Sprintf("required, at most %d bytes", MaxPasswordLen)})
		return
	}
	if body.New == nil {
		api.Fail(w, r, &api.ParamError{Name: "new", Problem: "required"})
		return
	}
	if err := CheckPassword(c.Name, *body.New); err != nil {
		api.Fail(w, r, err)
		return
	}
	at, wait := s.limiter.reserve(c.Name, RemoteAddr(r))
	if at == nil {
		api.Fail(w, r, lockedOut(wait))
		return
	}
	if _, _, err := s.Store.CheckLogin(r.Context(), c.Name, *body.Current); err != nil {
		if errors.Is(err, ErrBadCredentials) {
			at.failed()
			s.recordThrottled(r, func() Entry {
				return EntryFrom(r, AuditLoginFailed, "user/"+c.Name, map[string]any{"reason": "passwd_current"})
			})
			api.Fail(w, r, ErrWrongPassword)
			return
		}
		at.cancel()
		api.Fail(w, r, err)
		return
	}
	at.succeeded()
	if _, err := s.Store.UpdateUser(r.Context(), c.Name, UserChange{Password: body.New}); err != nil {
		api.Fail(w, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditPasswd, "user/"+c.Name, map[string]any{"self": true}))
	s.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
	if err := api.NewQuery(r).Err(); err != nil {
		api.Fail(w, r, err)
		return
	}
	users, err := s.Store.Users(r.Context())
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, api.List[User]{Items: users})
}

func (s *Service) addUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name     string   `json:"name"`
		Role     string   `json:"role"`
		Wards    []string `json:"wards"`
		Password string   `json:"password"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		api.Fail(w, r, err)
		return
	}
	u, err := s.Store.AddUser(r.Context(), NewUser{Name: body.Name, Role: body.Role, Wards: body.Wards, Password: body.Password})
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditUserAdd, "user/"+u.Name, map[string]any{"role": u.Role, "wards": u.Wards}))
	api.JSON(w, http.StatusCreated, u)
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.Store.User(r.Context(), r.PathValue("name"))
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, u)
}

func (s *Service) changeUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role     *string   `json:"role"`
		Wards    *[]string `json:"wards"`
		Disabled *bool     `json:"disabled"`
		Password *string   `json:"password"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		api.Fail(w, r, err)
		return
	}
	if body.Role == nil && body.Wards == nil && body.Disabled == nil && body.Password == nil {
		api.Fail(w, r, &api.ParamError{Name: "body", Problem: "nothing to change (role, wards, disabled, password)"})
		return
	}
	u, err := s.Store.UpdateUser(r.Context(), r.PathValue("name"),
		UserChange{Role: body.Role, Wards: body.Wards, Disabled: body.Disabled, Password: body.Password})
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	detail := map[string]any{}
	if body.Role != nil {
		detail["role"] = u.Role
	}
	if body.Wards != nil {
		detail["wards"] = u.Wards
	}
	if body.Disabled != nil {
		detail["disabled"] = u.Disabled
	}
	if body.Password != nil {
		detail["password"] = "changed"
	}
	action := AuditUserChange
	if body.Password != nil && len(detail) == 1 {
		action = AuditPasswd
	}
	s.record(r, EntryFrom(r, action, "user/"+u.Name, detail))
	api.JSON(w, http.StatusOK, u)
}

func (s *Service) revokeUserSessions(w http.ResponseWriter, r *http.Request) {
	u, err := s.Store.User(r.Context(), r.PathValue("name"))
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	n, err := s.Store.RevokeUserSessions(r.Context(), u.Name)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditUserSessions, "user/"+u.Name, map[string]any{"revoked": n}))
	api.JSON(w, http.StatusOK, map[string]int64{"revoked": n})
}

func (s *Service) listTokens(w http.ResponseWriter, r *http.Request) {
	if err := api.NewQuery(r).Err(); err != nil {
		api.Fail(w, r, err)
		return
	}
	ts, err := s.Store.Tokens(r.Context())
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	api.JSON(w, http.StatusOK, api.List[APIToken]{Items: ts})
}

func (s *Service) createToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      string   `json:"name"`
		Role      string   `json:"role"`
		Wards     []string `json:"wards"`
		ExpiresAt *string  `json:"expires_at"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		api.Fail(w, r, err)
		return
	}
	var exp *time.Time
	if body.ExpiresAt != nil {
		t, err := api.ParseTime(*body.ExpiresAt)
		if err != nil {
			api.Fail(w, r, &api.ParamError{Name: "expires_at", Problem: err.Error()})
			return
		}
		exp = &t
	}
	t, err := s.Store.CreateToken(r.Context(), NewAPIToken{Name: body.Name, Role: body.Role, Wards: body.Wards,
		ExpiresAt: exp, CreatedBy: api.CallerFrom(r.Context()).Name})
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditTokenCreate, "token/"+strconv.FormatInt(t.ID, 10),
		map[string]any{"name": t.Name, "role": t.Role, "wards": t.Wards, "expires_at": t.ExpiresAt}))
	api.JSON(w, http.StatusCreated, t)
}

func (s *Service) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		api.Fail(w, r, &api.ParamError{Name: "id", Problem: "want a positive integer token id"})
		return
	}
	t, err := s.Store.RevokeToken(r.Context(), id)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditTokenRevoke, "token/"+strconv.FormatInt(t.ID, 10), map[string]any{"name": t.Name}))
	w.WriteHeader(http.StatusNoContent)
}

type auditCursor struct {
	ID int64 `json:"i"`
}

func (s *Service) listAudit(w http.ResponseWriter, r *http.Request) {
	q := api.NewQuery(r, "actor", "action", "target", "from", "to", "limit", "cursor")
	f := AuditFilter{
		Actor:  q.String("actor", 200),
		Action: q.String("action", 64),
		Target: q.String("target", 300),
		From:   q.Time("from"),
		To:     q.Time("to"),
		Limit:  q.Int("limit", 100, 1, 500),
	}
	var cur auditCursor
	if q.Cursor("cursor", &cur) {
		if cur.ID < 1 {
			api.Fail(w, r, &api.ParamError{Name: "cursor", Problem: "not a cursor from a previous page"})
			return
		}
		f.BeforeID = cur.ID
	}
	if err := q.Err(); err != nil {
		api.Fail(w, r, err)
		return
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		api.Fail(w, r, &api.ParamError{Name: "to", Problem: "must be after from"})
		return
	}
	want := f.Limit
	f.Limit++
	entries, err := s.Auditor.List(r.Context(), f)
	if err != nil {
		api.Fail(w, r, err)
		return
	}
	out := api.List[Entry]{Items: entries}
	if len(entries) > want {
		out.Items = entries[:want]
		out.NextCursor = api.EncodeCursor(auditCursor{ID: out.Items[want-1].ID})
	}
	api.JSON(w, http.StatusOK, out)
}
