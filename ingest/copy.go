package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// COPY in PostgreSQL's binary format, encoded straight from the
// observations: pgx's CopyFrom takes rows as []any, which boxes every
// value (a dozen allocations per row) and encodes each through its type
// map. The columns are those of the tables map, in its order; the
// encodings are PostgreSQL's binary send formats (text: the bytes;
// timestamptz: microseconds since 2000-01-01 UTC; real: IEEE 754
// single; integer, smallint: big-endian; geometry: EWKB).
// TestCopyBinaryMatchesRows holds it to pgx's encoding of t.row.

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// pgEpochMicros is 2000-01-01 UTC in Unix microseconds.
const pgEpochMicros = 946684800000000

type copyBuf struct{ b []byte }

func (c *copyBuf) fields(n int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(n)) }

func (c *copyBuf) null() { c.b = binary.BigEndian.AppendUint32(c.b, math.MaxUint32) }

func (c *copyBuf) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

// optText: "" is NULL (nullStr).
func (c *copyBuf) optText(s string) {
	if s == "" {
		c.null()
		return
	}
	c.text(s)
}

func (c *copyBuf) timestamptz(t time.Time) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(t.UnixMicro()-pgEpochMicros))
}

func (c *copyBuf) float4(v float64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, math.Float32bits(float32(v)))
}

func (c *copyBuf) optFloat4(v float64, ok bool) {
	if !ok {
		c.null()
		return
	}
	c.float4(v)
}

func (c *copyBuf) int4(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(int32(v)))
}

func (c *copyBuf) int2(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 2)
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(int16(v)))
}

// point appends a WGS 84 point as EWKB (as pointEWKB).
func (c *copyBuf) point(lon, lat float64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 25)
	c.b = append(c.b, 1)
	c.b = binary.LittleEndian.AppendUint32(c.b, 0x20000001)
	c.b = binary.LittleEndian.AppendUint32(c.b, 4326)
	c.b = binary.LittleEndian.AppendUint64(c.b, math.Float64bits(lon))
	c.b = binary.LittleEndian.AppendUint64(c.b, math.Float64bits(lat))
}

// row appends one observation of kind k, columns as tables[k].cols.
func (c *copyBuf) row(k Kind, o *Observation, received time.Time) {
	c.fields(len(tables[k].cols))
	c.text(o.DeviceID)
	c.timestamptz(o.TS)
	c.text(o.MsgID)
	c.timestamptz(received)
	c.point(o.Lon, o.Lat)
	c.optText(o.Ward)
	switch k {
	case KindTraffic:
		c.float4(o.SpeedKmh)
		c.int4(o.Volume)
		c.float4(o.Occupancy)
		c.int4(o.IntervalS)
		c.optText(o.Lane)
		c.optFloat4(o.HeadingDeg, o.HasHeading)
	case KindCamera:
		c.text(o.Event)
		c.float4(o.Confidence)
		if o.HasCount {
			c.int4(o.Count)
		} else {
			c.null()
		}
		c.optText(o.SnapshotURL)
		c.optText(o.Zone)
	case KindEmergency:
		c.text(o.Type)
		c.int2(o.Priority)
		c.text(o.Channel)
		c.optText(o.Note)
		c.optText(o.CallerRef)
	case KindUnit:
		c.text(o.UnitKind)
		c.text(o.Status)
		c.optFloat4(o.SpeedKmh, o.HasSpeed)
		c.optFloat4(o.HeadingDeg, o.HasHeading)
	}
}

// encodeCopy is the binary COPY stream of rows of kind k, in a buffer
// from copyBufs: give it back with releaseCopy once it has been sent.
func encodeCopy(k Kind, rows []obsRow) []byte {
	c := copyBuf{b: (*copyBufs.Get().(*[]byte))[:0]}
	c.b = slices.Grow(c.b, len(copyHeader)+2+len(rows)*(200+4*len(tables[k].cols)))
	c.b = append(c.b, copyHeader...)
	for _, r := range rows {
		c.row(k, r.o, r.received)
	}
	c.b = binary.BigEndian.AppendUint16(c.b, math.MaxUint16) // trailer: -1
	return c.b
}

// copyBufs keeps the COPY streams' buffers between batches (a batch of
// 2000 readings is ~500 KB; allocating it for every batch was an eighth of
// iocd's allocation under load).
var copyBufs = sync.Pool{New: func() any { return new([]byte) }}

// releaseCopy gives b, from encodeCopy, back to copyBufs. Buffers grown
// past 8 MiB (a batch of large payloads) are left to the collector.
func releaseCopy(b []byte) {
	if cap(b) <= 8<<20 {
		copyBufs.Put(&b)
	}
}

// copyBinary COPYs rows of kind k into table (the kind's own or a staging
// table of the same columns).
func copyBinary(ctx context.Context, tx pgx.Tx, table string, k Kind, rows []obsRow) error {
	t := tables[k]
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", pgx.Identifier{table}.Sanitize(), strings.Join(t.cols, ", "))
	stream := encodeCopy(k, rows)
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(stream), sql)
	// On success or an error from the server CopyFrom has finished reading
	// the stream; when the connection fails it can return while its reader
	// goroutine still holds it, so then the buffer is not reused.
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) {
		releaseCopy(stream)
	}
	if err != nil {
		return err
	}
	if n := tag.RowsAffected(); n != int64(len(rows)) {
		return fmt.Errorf("copy %s: %d rows of %d", table, n, len(rows))
	}
	return nil
}
