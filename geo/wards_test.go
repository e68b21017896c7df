package geo

import "testing"

func TestLoadWards(t *testing.T) {
	wards, err := LoadWards("../../shared/data/hanoi/wards.geojson")
	if err != nil {
		t.Fatal(err)
	}
	if len(wards) != 126 {
		t.Fatalf("got %d wards, want 126", len(wards))
	}
	if wards[0].Code != "00004" || wards[0].Name != "Phường Ba Đình" || wards[0].Population == 0 {
		t.Fatalf("first ward = %+v", wards[0])
	}
}
