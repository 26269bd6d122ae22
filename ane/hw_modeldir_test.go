package ane

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWeightRel(t *testing.T) {
	for _, c := range []struct {
		path, want, err string
	}{
		{"@model_path/weights/wq.bin", filepath.FromSlash("weights/wq.bin"), ""},
		{"@model_path/weights/ü.bin", filepath.FromSlash("weights/ü.bin"), ""},
		{"@model_path/w.bin", "w.bin", ""},
		{"weights/wq.bin", "", "must be @model_path/"},
		{"@model_path/", "", "must be @model_path/"},
		{"@model_path/../x.bin", "", "inside the model directory"},
		{"@model_path//abs.bin", "", "inside the model directory"},
		// stringWithUTF8String: returns nil for these on macOS, and a nil
		// dictionary key aborts the process: refused here, with a reason.
		{"@model_path/weights/\xff.bin", "", "not valid UTF-8"},
		{"@model_path/weights/\xc3.bin", "", "not valid UTF-8"},
		{"@model_path/weights/w\x00.bin", "", "contains a NUL byte"},
		{"\x00@model_path/weights/w.bin", "", "contains a NUL byte"},
	} {
		got, err := weightRel(c.path)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("weightRel(%q) = %q, %v; want %q", c.path, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("weightRel(%q) = %q, %v; want an error containing %q", c.path, got, err, c.err)
		}
	}
}
