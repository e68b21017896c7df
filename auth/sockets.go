package auth

import (
	"context"
	"net/http"

	"ioc/api"
)

// Credential returns the token or session a request carries (the
// Authorization header winning over the cookie), for a long-lived
// connection to recheck while it lives.
func (s *Service) Credential(r *http.Request) string {
	token, _ := s.credential(r)
	return token
}

// Recheck tells who a credential stands for now: api.ErrUnauthenticated
// once the session ended (logout, expiry, password change) or the user was
// disabled; any other error means it could not be checked.
func (s *Service) Recheck(ctx context.Context, token string) (api.Caller, error) {
	c, err := s.Store.Lookup(ctx, token)
	if err == nil && c.Wards == nil {
		c.Wards = []string{}
	}
	return c, err
}
