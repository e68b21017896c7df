package ingest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"
)

func TestPointEWKBMatchesGoGeom(t *testing.T) {
	for _, p := range [][2]float64{{105.8542, 21.0285}, {-180, -90}, {180, 90}, {105.000001, 20.999999}} {
		want, err := ewkb.Marshal(geom.NewPointFlat(geom.XY, p[:]).SetSRID(4326), binary.LittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		if got := pointEWKB(p[0], p[1]); !bytes.Equal(got, want) {
			t.Errorf("%v: got % x, want % x", p, got, want)
		}
	}
}
