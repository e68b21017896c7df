package sim

import (
	"testing"
	"time"

	"ioc/ingest"
)

// The simulator's reading of the contract (Check) and ingest's (Decode) are
// written independently, as a device vendor and the centre would write
// them. They must agree: every valid message the simulator makes is
// accepted by ingest's decoder, and every malformed one is refused for the
// reason the simulator claims. Two refusals are the ingester's, not the
// decoder's: outside_service_area (it needs the city's outline) and a
// message without a position (missing_field only if the device has no
// registered position); for those the decoder must accept, the second with
// no position, which is what the ingester refuses.
func TestIngestAgreesWithCheck(t *testing.T) {
	cfg := smallConfig(t)
	cfg.BadRatio = 0.2
	cfg.Scenarios = "all"
	cfg.Prefix = "city"
	msgs, _ := generate(t, cfg, 4*time.Minute)
	lim := ingest.Limits{Prefix: cfg.Prefix, MaxPayloadBytes: MaxPayload, MaxBatchItems: 1000,
		LateWindow: 7 * 24 * time.Hour, FutureSkew: 5 * time.Minute}
	checked := map[string]int{}
	for _, m := range msgs {
		kind, device, rej := ingest.ParseTopic(cfg.Prefix, m.Topic)
		var reason string
		var obs []ingest.Observation
		if rej != nil {
			reason = rej.Reason
		} else {
			var rejs []ingest.Rejection
			if obs, rejs = ingest.Decode(lim, kind, device, m.Payload, m.TS); len(rejs) > 0 {
				reason = rejs[0].Reason
			}
		}
		want := m.Bad
		switch {
		case want == "outside_service_area":
			want = ""
		case m.Variant == "no_position":
			want = ""
			if len(obs) != 1 || obs[0].HasPos {
				t.Errorf("%s: a message without lat/lon decoded as %+v", m.Topic, obs)
			}
		}
		if reason != want {
			t.Errorf("%s (%s): ingest says %q, the simulator %q\n%s %.300q", m.Topic, m.Variant, reason, m.Bad, m.Topic, m.Payload)
		}
		checked[m.Bad]++
	}
	if checked[""] == 0 || len(checked) < len(BadReasons) {
		t.Fatalf("too few kinds of message checked: %v", checked)
	}
}
