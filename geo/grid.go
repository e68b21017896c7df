package geo

import (
	"math"
	"slices"
)

// areaGrid is a uniform grid over a fixed set of shapes that answers "the
// first shape (lowest index) covering a point". Built once, read-only after.
//
// Correctness does not depend on the grid: a cell only short-cuts the exact
// test where no boundary of a shape comes within gridEps of the cell, and
// there the answer cannot change across the cell. Cells are tested
// conservatively (an edge near a cell counts as touching it), so float
// rounding when mapping a point to a cell cannot put it under a wrong answer.
type areaGrid struct {
	box        bbox
	nx, ny     int
	invW, invH float64
	cells      []gridCell
	cands      []gridCand
	shapes     []*shape
}

// gridCell: when n is 0 the cell is pure and first is the answer (-1: no
// shape); otherwise cands[off:off+n] lists the shapes to try, in order.
type gridCell struct {
	off   uint32
	n     uint16
	first int16
}

type gridCand struct {
	idx  uint16
	full bool // the shape covers the whole cell: no exact test needed
}

// gridEps (degrees, about 0.1 mm) widens every cell when deciding which
// edges touch it.
const gridEps = 1e-9

// maxGridShapes bounds the shapes one grid holds (indices are int16).
const maxGridShapes = math.MaxInt16

// newAreaGrid builds the grid; targetCells 0 picks a size from the number of
// edges (about 8 cells per edge, between 4096 and 1<<20 cells).
func newAreaGrid(shapes []*shape, targetCells int) areaGrid {
	g := areaGrid{shapes: shapes}
	if len(shapes) == 0 || len(shapes) > maxGridShapes {
		g.box = emptyBBox()
		return g
	}
	g.box = emptyBBox()
	segs := 0
	for _, s := range shapes {
		g.box.union(s.box)
		segs += s.segments()
	}
	// A margin so the extreme vertices are strictly inside the grid.
	g.box.minX -= 1e-7
	g.box.minY -= 1e-7
	g.box.maxX += 1e-7
	g.box.maxY += 1e-7
	if targetCells <= 0 {
		targetCells = min(max(8*segs, 4096), 1<<20)
	}
	w, h := g.box.maxX-g.box.minX, g.box.maxY-g.box.minY
	cs := math.Sqrt(w * h / float64(targetCells))
	g.nx = max(1, int(math.Ceil(w/cs)))
	g.ny = max(1, int(math.Ceil(h/cs)))
	g.invW = float64(g.nx) / w
	g.invH = float64(g.ny) / h
	cellW, cellH := w/float64(g.nx), h/float64(g.ny)
	ncell := g.nx * g.ny

	cellBox := func(cx, cy int) bbox {
		x0 := g.box.minX + float64(cx)*cellW
		y0 := g.box.minY + float64(cy)*cellH
		return bbox{x0 - gridEps, y0 - gridEps, x0 + cellW + gridEps, y0 + cellH + gridEps}
	}

	// Pairs (cell, shape) where an edge of the shape touches the cell.
	type pair struct{ cell, shape int32 }
	var touched []pair
	for si, s := range shapes {
		for _, p := range s.polys {
			for _, r := range p.rings {
				for b := 0; b < r.nb; b++ {
					for _, e := range r.edges[r.bandOff[b]:r.bandOff[b+1]] {
						if r.band(math.Min(e.y1, e.y2)) != b {
							continue // edges are copied into every band they span
						}
						x0, x1 := g.cellX(math.Min(e.x1, e.x2)-gridEps), g.cellX(math.Max(e.x1, e.x2)+gridEps)
						y0, y1 := g.cellY(math.Min(e.y1, e.y2)-gridEps), g.cellY(math.Max(e.y1, e.y2)+gridEps)
						for cy := y0; cy <= y1; cy++ {
							for cx := x0; cx <= x1; cx++ {
								if segTouchesBox(e, cellBox(cx, cy)) {
									touched = append(touched, pair{int32(cy*g.nx + cx), int32(si)})
								}
							}
						}
					}
				}
			}
		}
	}
	slices.SortFunc(touched, func(a, b pair) int {
		if a.shape != b.shape {
			return int(a.shape - b.shape)
		}
		return int(a.cell - b.cell)
	})
	touched = slices.Compact(touched)

	// Per cell candidate lists, built in shape order so they end up sorted.
	perCell := make([][]gridCand, ncell)
	mark := make([]bool, ncell)
	t := 0
	for si, s := range shapes {
		start := t
		for t < len(touched) && int(touched[t].shape) == si {
			mark[touched[t].cell] = true
			t++
		}
		x0, x1 := g.cellX(s.box.minX-gridEps), g.cellX(s.box.maxX+gridEps)
		y0, y1 := g.cellY(s.box.minY-gridEps), g.cellY(s.box.maxY+gridEps)
		for cy := y0; cy <= y1; cy++ {
			for cx := x0; cx <= x1; cx++ {
				c := cy*g.nx + cx
				if mark[c] {
					perCell[c] = append(perCell[c], gridCand{idx: uint16(si)})
					continue
				}
				// No edge of this shape near the cell: its centre answers
				// for the whole cell.
				cb := cellBox(cx, cy)
				if s.covers((cb.minX+cb.maxX)/2, (cb.minY+cb.maxY)/2) {
					perCell[c] = append(perCell[c], gridCand{idx: uint16(si), full: true})
				}
			}
		}
		for _, p := range touched[start:t] {
			mark[p.cell] = false
		}
	}

	g.cells = make([]gridCell, ncell)
	for c, list := range perCell {
		// Lowest index wins, so nothing after a full candidate matters.
		for i, k := range list {
			if k.full {
				list = list[:i+1]
				break
			}
		}
		switch {
		case len(list) == 0:
			g.cells[c] = gridCell{first: -1}
		case list[0].full:
			g.cells[c] = gridCell{first: int16(list[0].idx)}
		default:
			g.cells[c] = gridCell{off: uint32(len(g.cands)), n: uint16(len(list)), first: -1}
			g.cands = append(g.cands, list...)
		}
	}
	return g
}

func (g *areaGrid) cellX(x float64) int {
	return clampInt(int(math.Floor((x-g.box.minX)*g.invW)), 0, g.nx-1)
}

func (g *areaGrid) cellY(y float64) int {
	return clampInt(int(math.Floor((y-g.box.minY)*g.invH)), 0, g.ny-1)
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// first returns the lowest-index shape covering (x, y), or -1.
func (g *areaGrid) first(x, y float64) int {
	if !g.box.contains(x, y) { // also rejects NaN
		return -1
	}
	cx := int((x - g.box.minX) * g.invW)
	if cx >= g.nx {
		cx = g.nx - 1
	}
	cy := int((y - g.box.minY) * g.invH)
	if cy >= g.ny {
		cy = g.ny - 1
	}
	c := &g.cells[cy*g.nx+cx]
	if c.n == 0 {
		return int(c.first)
	}
	for _, k := range g.cands[c.off : c.off+uint32(c.n)] {
		if k.full || g.shapes[k.idx].covers(x, y) {
			return int(k.idx)
		}
	}
	return -1
}

// segTouchesBox reports whether the segment may touch the box. It errs
// towards true: a false positive only costs an exact test later.
func segTouchesBox(e edge, b bbox) bool {
	if math.Max(e.x1, e.x2) < b.minX || math.Min(e.x1, e.x2) > b.maxX ||
		math.Max(e.y1, e.y2) < b.minY || math.Min(e.y1, e.y2) > b.maxY {
		return false
	}
	// Separating axis: all four corners strictly on one side of the line.
	dx, dy := e.x2-e.x1, e.y2-e.y1
	side := func(x, y float64) float64 { return dx*(y-e.y1) - (x-e.x1)*dy }
	s1, s2 := side(b.minX, b.minY), side(b.maxX, b.minY)
	s3, s4 := side(b.minX, b.maxY), side(b.maxX, b.maxY)
	if s1 > 0 && s2 > 0 && s3 > 0 && s4 > 0 {
		return false
	}
	if s1 < 0 && s2 < 0 && s3 < 0 && s4 < 0 {
		return false
	}
	return true
}
