package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
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

// decodeBody reads one JSON object into v, strictly: JSON content type,
// no unknown fields, no trailing data, right types. Its errors are safe to
// show and never echo more than a short piece of the input.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		api.Error(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		big *http.MaxBytesError
		msg string
	)
	switch {
	case errors.As(err, &big):
		api.Error(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", big.Limit))
		return false
	case errors.Is(err, io.EOF):
		msg = "body: empty; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "body: JSON ends early"
	case errors.As(err, &syn):
		msg = fmt.Sprintf("body: not valid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			msg = "body: want a JSON object"
		} else {
			msg = fmt.Sprintf("%s: want %s, got %s", clipString(typ.Field, 64), jsonType(typ.Type.Kind().String()), typ.Value)
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg = "unknown field " + clipString(strings.TrimPrefix(err.Error(), "json: unknown field "), 66)
	default:
		msg = "body: " + clipString(err.Error(), 100)
	}
	api.Error(w, http.StatusBadRequest, "bad_parameter", msg)
	return false
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "bool":
		return "true or false"
	case "struct":
		return "a time (RFC 3339) or an object"
	case "int", "int64", "int32", "uint32", "uint8":
		return "an integer"
	}
	return kind
}

func badParam(w http.ResponseWriter, field, problem string) {
	api.Error(w, http.StatusBadRequest, "bad_parameter", field+": "+problem)
}

// fail answers err: input errors as 400, the rest by kind; internal
// errors are logged and answered without their text.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		api.Error(w, http.StatusBadRequest, "bad_parameter", ie.Error())
	case errors.Is(err, ErrNotFound):
		api.NotFound(w, what)
	case errors.Is(err, ErrExists):
		api.Error(w, http.StatusConflict, "exists", what+" with that name exists")
	case errors.Is(err, ErrLastAdmin):
		api.Error(w, http.StatusConflict, "last_admin", "that would leave no enabled city-wide admin")
	default:
		api.Internal(w, s.log, r, err)
	}
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
	if !decodeBody(w, r, &body) {
		logins.WithLabelValues("bad_request").Inc()
		return
	}
	if body.Name == nil || *body.Name == "" {
		badParam(w, "name", "required")
		return
	}
	if body.Password == nil || *body.Password == "" {
		badParam(w, "password", "required")
		return
	}
	name, err := NormalizeName("name", *body.Name)
	if err != nil {
		logins.WithLabelValues("bad_request").Inc()
		s.fail(w, r, "", err)
		return
	}
	if len(*body.Password) > MaxPasswordLen {
		logins.WithLabelValues("bad_request").Inc()
		badParam(w, "password", fmt.Sprintf("at most %d bytes", MaxPasswordLen))
		return
	}
	addr := RemoteAddr(r)
	if wait := s.limiter.locked(name, addr); wait > 0 {
		logins.WithLabelValues("locked").Inc()
		s.recordThrottled(r, Entry{Remote: addr, Action: AuditLoginLocked, Target: "user/" + name})
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		api.Error(w, http.StatusTooManyRequests, "locked_out",
			fmt.Sprintf("too many failed sign-ins; try again in %d s", secs))
		return
	}
	u, reason, err := s.Store.CheckLogin(r.Context(), name, *body.Password)
	if errors.Is(err, ErrBadCredentials) {
		logins.WithLabelValues("failed").Inc()
		locked := s.limiter.fail(name, addr)
		s.recordThrottled(r, Entry{Remote: addr, Action: AuditLoginFailed, Target: "user/" + name,
			Detail: map[string]any{"reason": reason, "locked": locked}})
		api.Error(w, http.StatusUnauthorized, "invalid_credentials", "wrong name or password")
		return
	}
	if err != nil {
		api.Internal(w, s.log, r, err)
		return
	}
	s.limiter.success(name)
	sess, err := s.Store.NewSession(r.Context(), u, s.cfg.SessionTTL, addr, r.UserAgent())
	if err != nil {
		api.Internal(w, s.log, r, err)
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
		api.Internal(w, s.log, r, err)
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
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Current == nil || *body.Current == "" || len(*body.Current) > MaxPasswordLen {
		badParam(w, "current", "required, at most 256 bytes")
		return
	}
	if body.New == nil {
		badParam(w, "new", "required")
		return
	}
	if err := CheckPassword(c.Name, *body.New); err != nil {
		s.fail(w, r, "", err)
		return
	}
	addr := RemoteAddr(r)
	if wait := s.limiter.locked(c.Name, addr); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		api.Error(w, http.StatusTooManyRequests, "locked_out", "too many failed attempts")
		return
	}
	if _, _, err := s.Store.CheckLogin(r.Context(), c.Name, *body.Current); err != nil {
		if errors.Is(err, ErrBadCredentials) {
			s.limiter.fail(c.Name, addr)
			s.recordThrottled(r, EntryFrom(r, AuditLoginFailed, "user/"+c.Name, map[string]any{"reason": "passwd_current"}))
			api.Error(w, http.StatusForbidden, "wrong_password", "current password is wrong")
			return
		}
		api.Internal(w, s.log, r, err)
		return
	}
	if _, err := s.Store.UpdateUser(r.Context(), c.Name, UserChange{Password: body.New}); err != nil {
		s.fail(w, r, "account", err)
		return
	}
	s.record(r, EntryFrom(r, AuditPasswd, "user/"+c.Name, map[string]any{"self": true}))
	s.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
	if q := api.NewQuery(r); api.BadParam(w, q.Err()) {
		return
	}
	users, err := s.Store.Users(r.Context())
	if err != nil {
		api.Internal(w, s.log, r, err)
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
	if !decodeBody(w, r, &body) {
		return
	}
	u, err := s.Store.AddUser(r.Context(), NewUser{Name: body.Name, Role: body.Role, Wards: body.Wards, Password: body.Password})
	if err != nil {
		s.fail(w, r, "account", err)
		return
	}
	s.record(r, EntryFrom(r, AuditUserAdd, "user/"+u.Name, map[string]any{"role": u.Role, "wards": u.Wards}))
	api.JSON(w, http.StatusCreated, u)
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.Store.User(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, "account", err)
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
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Role == nil && body.Wards == nil && body.Disabled == nil && body.Password == nil {
		badParam(w, "body", "nothing to change (role, wards, disabled, password)")
		return
	}
	u, err := s.Store.UpdateUser(r.Context(), r.PathValue("name"),
		UserChange{Role: body.Role, Wards: body.Wards, Disabled: body.Disabled, Password: body.Password})
	if err != nil {
		s.fail(w, r, "account", err)
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
		s.fail(w, r, "account", err)
		return
	}
	n, err := s.Store.RevokeUserSessions(r.Context(), u.Name)
	if err != nil {
		api.Internal(w, s.log, r, err)
		return
	}
	s.record(r, EntryFrom(r, AuditUserSessions, "user/"+u.Name, map[string]any{"revoked": n}))
	api.JSON(w, http.StatusOK, map[string]int64{"revoked": n})
}

func (s *Service) listTokens(w http.ResponseWriter, r *http.Request) {
	if q := api.NewQuery(r); api.BadParam(w, q.Err()) {
		return
	}
	ts, err := s.Store.Tokens(r.Context())
	if err != nil {
		api.Internal(w, s.log, r, err)
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
	if !decodeBody(w, r, &body) {
		return
	}
	var exp *time.Time
	if body.ExpiresAt != nil {
		t, err := api.ParseTime(*body.ExpiresAt)
		if err != nil {
			badParam(w, "expires_at", err.Error())
			return
		}
		exp = &t
	}
	t, err := s.Store.CreateToken(r.Context(), NewAPIToken{Name: body.Name, Role: body.Role, Wards: body.Wards,
		ExpiresAt: exp, CreatedBy: api.CallerFrom(r.Context()).Name})
	if err != nil {
		s.fail(w, r, "active token", err)
		return
	}
	s.record(r, EntryFrom(r, AuditTokenCreate, "token/"+strconv.FormatInt(t.ID, 10),
		map[string]any{"name": t.Name, "role": t.Role, "wards": t.Wards, "expires_at": t.ExpiresAt}))
	api.JSON(w, http.StatusCreated, t)
}

func (s *Service) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		badParam(w, "id", "want a positive integer token id")
		return
	}
	t, err := s.Store.RevokeToken(r.Context(), id)
	if err != nil {
		s.fail(w, r, "active token", err)
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
			badParam(w, "cursor", "not a cursor from a previous page")
			return
		}
		f.BeforeID = cur.ID
	}
	if api.BadParam(w, q.Err()) {
		return
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		badParam(w, "to", "must be after from")
		return
	}
	want := f.Limit
	f.Limit++
	entries, err := s.Auditor.List(r.Context(), f)
	if err != nil {
		api.Internal(w, s.log, r, err)
		return
	}
	out := api.List[Entry]{Items: entries}
	if len(entries) > want {
		out.Items = entries[:want]
		out.NextCursor = api.EncodeCursor(auditCursor{ID: out.Items[want-1].ID})
	}
	api.JSON(w, http.StatusOK, out)
}
