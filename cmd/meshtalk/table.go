package main

import (
	"bytes"
	"io"
	"strings"

	"github.com/mattn/go-runewidth"
)

// table is what text/tabwriter is to the commands' tables (cells end in
// a tab, rows in a newline; Flush writes them aligned), but measures a
// cell by the columns it takes on a terminal: a name in Chinese or with
// an emoji takes two per character, and the columns stay aligned.
type table struct {
	w   io.Writer
	buf bytes.Buffer
}

// tableGap is the space between columns.
const tableGap = 2

func newTable(w io.Writer) *table { return &table{w: w} }

func (t *table) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush writes the rows, each cell but the last padded to its column's
// width.
func (t *table) Flush() error {
	var rows [][]string
	var widths []int
	for line := range strings.Lines(t.buf.String()) {
		cells := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		for i, c := range cells[:len(cells)-1] {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], runewidth.StringWidth(c))
		}
		rows = append(rows, cells)
	}
	t.buf.Reset()
	var out strings.Builder
	for _, cells := range rows {
		for i, c := range cells {
			out.WriteString(c)
			if i < len(cells)-1 {
				out.WriteString(strings.Repeat(" ", widths[i]-runewidth.StringWidth(c)+tableGap))
			}
		}
		out.WriteString("\n")
	}
	_, err := io.WriteString(t.w, out.String())
	return err
}
