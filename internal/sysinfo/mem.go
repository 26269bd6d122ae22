package sysinfo

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync"
)

// TotalMemory returns the machine's physical memory in bytes (MemTotal of
// /proc/meminfo on Linux, hw.memsize on macOS), or 0 when the system does
// not say. File readers use it to refuse a header whose claimed sizes could
// never be allocated, rather than crash trying.
var TotalMemory = sync.OnceValue(func() int64 { return totalMemory() })

// parseMeminfo returns MemTotal from the text of /proc/meminfo, in bytes,
// or 0 if it is absent or malformed.
func parseMeminfo(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "MemTotal" {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 || len(f) > 2 {
			return 0
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		mult := int64(1)
		if len(f) == 2 {
			switch strings.ToLower(f[1]) {
			case "kb":
				mult = 1024
			case "mb":
				mult = 1 << 20
			case "gb":
				mult = 1 << 30
			default:
				return 0
			}
		}
		if n > (1<<63-1)/mult {
			return 0
		}
		return n * mult
	}
	return 0
}
