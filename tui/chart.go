package tui

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/guptarohit/asciigraph"
	"github.com/muesli/termenv"
)

// chart draws the loss and its moving average in exactly w×h cells.
//
// asciigraph panics on an empty or all-NaN series and on ±Inf, collapses a
// constant series to one row, and resamples by interpolation when given a
// Width (which aliases a noisy loss). So the series is binned here to one
// point per column (mean of the finite losses in the bin, gaps for bins
// with none), the y range is always given explicitly with some headroom,
// and the result is padded to a fixed height so the layout never jumps.
func chart(s *lossSeries, w, h int, color bool) string {
	xaxis := h >= 10 // step numbers under the plot need two rows
	plotH := h - 1
	if xaxis {
		plotH = h - 3
	}
	if s.n() < 2 || plotH < 2 || w < 20 {
		msg := "waiting for the first steps…"
		if s.n() == 1 {
			msg = "loss " + lossText(s.loss[0]) + " — the curve starts at the second step"
		}
		return placeholder(msg, w, h)
	}

	if !s.ranged {
		return placeholder("no finite loss yet (NaN/Inf) — see warnings", w, h)
	}
	lo, hi := s.lo, s.hi
	pad := max((hi-lo)*0.05, math.Abs(hi)*0.01, 1e-3)
	prec := uint(2)
	if hi-lo < 0.05 {
		prec = 4
	}

	// Labels and axis take ~8 columns; start there and shrink if
	// asciigraph's labels turned out wider. A short run is stretched over
	// the full width (bin repeats points) so the step axis reads well.
	cols := w - 8
	var out []string
	var widths []int
	for range 3 {
		train, avg, val := bin(s, cols)
		opts := []asciigraph.Option{
			asciigraph.Height(plotH),
			asciigraph.LowerBound(lo - pad),
			asciigraph.UpperBound(hi + pad),
			asciigraph.Precision(prec),
		}
		series := [][]float64{train, avg}
		if val != nil {
			series = append(series, val)
		}
		if color {
			opts = append(opts, asciigraph.SeriesColors(asciigraph.SkyBlue, asciigraph.Orange, asciigraph.LimeGreen),
				asciigraph.AxisColor(asciigraph.Gray), asciigraph.LabelColor(asciigraph.Gray))
		} else {
			// Without colour the average and validation must differ by
			// their glyphs.
			opts = append(opts, asciigraph.SeriesChars(asciigraph.DefaultCharSet, asciigraph.CreateCharSet("•"), asciigraph.CreateCharSet("◆")))
		}
		if xaxis {
			first, last := s.steps[0]+1, s.lastStep()+1
			opts = append(opts,
				asciigraph.XAxisRange(float64(first), float64(last)),
				asciigraph.XAxisTickCount(max(2, min(cols/14, last-first+1))),
				asciigraph.XAxisValueFormatter(func(v float64) string { return fmt.Sprintf("%.0f", v) }))
		}
		out = strings.Split(strings.TrimRight(asciigraph.PlotMany(series, opts...), "\n"), "\n")
		wide := 0
		widths = widths[:0]
		for _, l := range out {
			lw := lipgloss.Width(l)
			widths = append(widths, lw)
			wide = max(wide, lw)
		}
		if wide <= w || cols <= 8 {
			break
		}
		cols = max(8, cols-(wide-w))
	}
	// Rounding in asciigraph can add a row; drop from the top so the step
	// axis stays visible.
	if len(out) > h {
		out, widths = out[len(out)-h:], widths[len(widths)-h:]
	}
	if slices.Max(widths) > w {
		return block(out, w, h)
	}
	// block, without measuring every line again: pad to w, then blank
	// lines to h.
	var b strings.Builder
	for i := range h {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i < len(out) {
			b.WriteString(out[i])
			b.WriteString(strings.Repeat(" ", w-widths[i]))
		} else {
			b.WriteString(strings.Repeat(" ", w))
		}
	}
	return b.String()
}

// chartKey is what a chart drawn by Model.chart depends on.
type chartKey struct {
	gen, w, h int
	p         termenv.Profile
}

// chart is chart(&m.series, w, h, colour()), drawn again only when the
// series, the size or the colour profile changed.
func (m *Model) chart(w, h int) string {
	k := chartKey{m.seriesGen, w, h, lipgloss.ColorProfile()}
	if m.chartS == "" || m.chartK != k {
		m.chartK, m.chartS = k, chart(&m.series, w, h, colour())
	}
	return m.chartS
}

func placeholder(msg string, w, h int) string {
	lines := make([]string, h)
	lines[h/2] = dim.Render(lipgloss.PlaceHorizontal(w, lipgloss.Center, msg))
	return block(lines, w, h)
}

// bin maps the series onto cols points: per column the mean of its finite
// losses (NaN, a gap, when it has none) and the last moving-average value;
// with fewer points than columns each point spans several columns. val is
// nil without validation losses, else NaN but in the columns of the steps
// they were measured after: isolated points.
func bin(s *lossSeries, cols int) (train, avg, val []float64) {
	n := s.n()
	train, avg = make([]float64, cols), make([]float64, cols)
	for c := range cols {
		a, b := c*n/cols, (c+1)*n/cols
		if b <= a {
			b = a + 1
		}
		sum, k := 0.0, 0
		av := math.NaN()
		for i := a; i < b && i < n; i++ {
			if finite(s.loss[i]) {
				sum += s.loss[i]
				k++
			}
			if finite(s.avg[i]) {
				av = s.avg[i]
			}
		}
		train[c], avg[c] = math.NaN(), av
		if k > 0 {
			train[c] = sum / float64(k)
		}
	}
	// asciigraph needs a finite value in every series it scans for its
	// range; a series that is all gaps is replaced by the other one.
	if allNaN(train) {
		copy(train, avg)
	}
	if allNaN(avg) {
		copy(avg, train)
	}
	for _, v := range s.val {
		// The column of the first kept step at or after v.step.
		i, _ := slices.BinarySearch(s.steps, v.step)
		if i >= n || !finite(v.loss) {
			continue
		}
		if val == nil {
			val = make([]float64, cols)
			for c := range val {
				val[c] = math.NaN()
			}
		}
		val[min(cols-1, i*cols/n)] = v.loss
	}
	return train, avg, val
}

func allNaN(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return false
		}
	}
	return true
}
