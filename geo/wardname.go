package geo

// WardName returns a ward's Vietnamese name, or "" for an unknown code.
// Other packages use it to answer {"code", "name"} (CONTRACT section 2).
func (s *Service) WardName(code string) string {
	return s.areas.wards[code].Name
}

// KnownWard reports whether code is one of the loaded wards; handlers pass
// it to api.Query.Ward so an unknown code is a 400, not an empty answer.
func (s *Service) KnownWard(code string) bool {
	_, ok := s.areas.wards[code]
	return ok
}
