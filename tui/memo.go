package tui

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Rendering a style is most of a frame's cost (lipgloss measures, splits
// and pads on every Render), and most of what a frame renders is the same
// text as the frame before: titles, separators, table headers, the state
// badge. styled keeps those, per colour profile; text that changes with
// every step is rendered directly and never goes through it.

type memoKey struct {
	st   *lipgloss.Style // one of the package's styles; nil for the badges
	text string
	p    termenv.Profile
}

type memoVal struct {
	s string
	w int // lipgloss.Width(s)
}

// memoCap bounds the cache: the static texts are a few dozen; a checkpoint
// path changes with each checkpoint, so the cache is emptied when full.
const memoCap = 256

// styled is st.Render(text), remembered. st must be a package-level style
// that is never modified.
func (m *Model) styled(st *lipgloss.Style, text string) string {
	return m.styledW(st, text).s
}

// styledW is styled with the rendered text's width.
func (m *Model) styledW(st *lipgloss.Style, text string) memoVal {
	k := memoKey{st, text, lipgloss.ColorProfile()}
	if v, ok := m.memo[k]; ok {
		return v
	}
	s := st.Render(text)
	return m.remember(k, s)
}

func (m *Model) remember(k memoKey, s string) memoVal {
	if m.memo == nil || len(m.memo) >= memoCap {
		m.memo = make(map[memoKey]memoVal)
	}
	v := memoVal{s, lipgloss.Width(s)}
	m.memo[k] = v
	return v
}
