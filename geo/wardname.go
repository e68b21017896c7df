package geo

// WardName returns a ward's Vietnamese name, or "" for an unknown code.
// Other packages use it to answer {"code", "name"} (CONTRACT section 2).
func (s *Service) WardName(code string) string {
	return s.areas.wards[code].Name
}
