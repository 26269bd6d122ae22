package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// count formats a parameter count the way model cards do: 15.2M, 110M, 1.1B.
func count(n int64) string {
	v := float64(n)
	switch {
	case n >= 1e9:
		return sig3(v/1e9) + "B"
	case n >= 1e6:
		return sig3(v/1e6) + "M"
	case n >= 1e3:
		return sig3(v/1e3) + "k"
	}
	return fmt.Sprint(n)
}

// sig3 prints three significant digits without a trailing ".0": numbers in
// a live table should not change width with every redraw.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case !finite(v):
		return "—"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// rate formats FLOP/s with the unit that keeps three significant digits.
func rate(flops float64) string {
	switch {
	case !finite(flops) && !(flops > 0):
		return "—"
	case flops >= 1e12:
		return sig3(flops/1e12) + " TFLOP/s"
	case flops >= 1e9:
		return sig3(flops/1e9) + " GFLOP/s"
	case flops >= 1e6:
		return sig3(flops/1e6) + " MFLOP/s"
	case flops > 0:
		return sig3(flops/1e3) + " kFLOP/s"
	}
	return "—"
}

// ms formats a duration in milliseconds, three significant digits.
func ms(d time.Duration) string { return sig3(float64(d) / float64(time.Millisecond)) }

// share formats part/whole as a percentage, "—" when whole is zero.
func share(part, whole time.Duration) string {
	if whole <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// dur formats elapsed and remaining times compactly: 42s, 3m04s, 1h02m, 2d03h.
func dur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// tokRate formats tokens per second: 950, 12.3k, 1.20M.
func tokRate(v float64) string {
	switch {
	case !finite(v) || v <= 0:
		return "—"
	case v >= 1e6:
		return sig3(v/1e6) + "M"
	case v >= 1e3:
		return sig3(v/1e3) + "k"
	}
	return fmt.Sprintf("%.0f", v)
}

// lossText formats a loss, saying so plainly when it is not a number.
func lossText(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return fmt.Sprintf("%.4f", v)
}

// fit makes s exactly w cells wide: truncated with an ellipsis, or padded.
// Every line the console draws goes through it, so no panel can push the
// layout wider than the terminal.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	// Measuring is most of a frame's cost: measure once unless truncated.
	n := lipgloss.Width(s)
	if n > w {
		s = ansi.Truncate(s, w, "…")
		n = lipgloss.Width(s)
	}
	if pad := w - n; pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// block makes lines exactly w wide and h high.
func block(lines []string, w, h int) string {
	out := make([]string, h)
	for i := range out {
		if i < len(lines) {
			out[i] = fit(lines[i], w)
		} else {
			out[i] = strings.Repeat(" ", w)
		}
	}
	return strings.Join(out, "\n")
}

// items joins as many of parts as fit in w, in order of importance: on a
// narrow terminal the least important figures go, the line never wraps.
func items(parts []string, sep string, w int) string {
	var b strings.Builder
	used := 0
	for _, p := range parts {
		if p == "" {
			continue
		}
		add := lipgloss.Width(p)
		if used > 0 {
			add += lipgloss.Width(sep)
		}
		if used+add > w {
			break
		}
		if used > 0 {
			b.WriteString(sep)
		}
		b.WriteString(p)
		used += add
	}
	return b.String()
}
