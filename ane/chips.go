package ane

import (
	"fmt"
	"regexp"
	"strings"
)

// Chip identifies the Apple silicon under the Neural Engine device and the
// fp16 peak that utilisation is measured against.
type Chip struct {
	// Brand is the CPU brand string, "Apple M4 Pro" (sysctl
	// machdep.cpu.brand_string through internal/sysinfo).
	Brand string
	// Generation is "M1" … "M5" when Brand names an M-series chip, else "".
	Generation string
	// Tier is "", "Pro", "Max" or "Ultra".
	Tier string
	// SubType is the ANE sub-type the framework reports
	// (+[_ANEDeviceInfo aneSubType], ane-anchor §1.2), such as "h16"; "" when
	// unknown.
	SubType string
	// Cores is the Neural Engine's core count when the framework reports it;
	// 0 when unknown.
	Cores int
	// Peak is the fp16 peak in FLOP/s: the best published measurement for
	// the chip's generation (see PeakFor), or a placeholder when there is none.
	Peak float64
	// PeakMeasured is false when Peak is a placeholder, not a measurement.
	PeakMeasured bool
	// PeakSource says where Peak comes from, for people.
	PeakSource string
}

// Label is the chip for a device name: "Apple M4 (h16, 16 cores)".
func (c Chip) Label() string {
	name := c.Brand
	if name == "" {
		name = "unknown chip"
	}
	var extra []string
	if c.SubType != "" {
		extra = append(extra, c.SubType)
	}
	if c.Cores > 0 {
		extra = append(extra, fmt.Sprintf("%d cores", c.Cores))
	}
	if len(extra) == 0 {
		return name
	}
	return name + " (" + strings.Join(extra, ", ") + ")"
}

// peakRecord is one published fp16 peak measurement.
type peakRecord struct {
	chip   string  // generation and tier, "M4 Pro"
	flops  float64 // FLOP/s
	source string
}

// publishedPeaks are the fp16 peaks measured on the ANE and published, all
// from the maderix/ANE benchmarks summarised in research ane-anchor §7.2
// (peers.md §6 agrees: "11–19 TFLOPS fp16 on M4/M5"). The configurations
// differ: chained 1×1 convs of 512 channels at spatial 64 (inmem_peak sp64)
// reach roughly two thirds of what the same chain reaches at spatial 4096
// (64×64) or 2048, so only the largest figure of a generation is a peak.
// No M1 or M2 figure was published (inmem_peak failed on M1 Pro and M1 Max).
var publishedPeaks = []peakRecord{
	{"M3 Pro", 16.77e12, "inmem_peak, 128× conv 512ch at spatial 2048 (ane-anchor §7.2)"},
	{"M3 Ultra", 8.08e12, "inmem_peak best, 512ch (maderix issue #42 / PR #28, ane-anchor §7.2)"},
	{"M4", 18.6e12, "maderix README, 128× conv 512ch 64×64, H16G (ane-anchor §7.2)"},
	{"M4 Pro", 12.57e12, "inmem_peak, 128× conv 512ch at spatial 64 (ane-anchor §7.2)"},
	{"M4 Max", 10.93e12, "inmem_peak, 128× conv 512ch at spatial 64 (ane-anchor §7.2)"},
	{"M5", 12.44e12, "inmem_peak, 128× conv 512ch at spatial 64 (ane-anchor §7.2)"},
	{"M5 Max", 19.27e12, "maderix PR #50, 128× conv 512ch 64×64, h17 (ane-anchor §7.2)"},
}

// placeholderPeak stands in for chips without a published measurement: the
// order of the published figures (8–19 TFLOPS, ane-anchor §7.2), so that
// utilisation has the right magnitude. Chip.PeakMeasured is false for it and
// every display should say "estimate".
const placeholderPeak = 10e12

var brandRE = regexp.MustCompile(`\b(M[1-9][0-9]?)(?:\s+(Pro|Max|Ultra))?\b`)

// parseBrand extracts the generation and tier from a CPU brand string:
// "Apple M4 Pro" → ("M4", "Pro").
func parseBrand(brand string) (gen, tier string) {
	if !strings.Contains(brand, "Apple") {
		return "", ""
	}
	m := brandRE.FindStringSubmatch(brand)
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

// PeakFor returns the fp16 peak to use for a chip: the best published figure
// of its generation, since every chip of a generation but the Ultra has the
// same 16-core Neural Engine (ane-anchor §7.2: "NE has 16 cores on all but
// Ultra (32)"), and the lower figures were measured at small spatial sizes.
// An Ultra uses its own figure when one was published. Without any figure for
// the generation the result is a placeholder and measured is false.
func PeakFor(gen, tier string) (flops float64, measured bool, source string) {
	name := strings.TrimSpace(gen + " " + tier)
	if tier == "Ultra" {
		for _, r := range publishedPeaks {
			if r.chip == name {
				return r.flops, true, "Apple " + r.chip + ": " + r.source
			}
		}
	}
	var best peakRecord
	for _, r := range publishedPeaks {
		g, t, _ := strings.Cut(r.chip, " ")
		if g == gen && t != "Ultra" && r.flops > best.flops {
			best = r
		}
	}
	if best.flops > 0 {
		src := "Apple " + best.chip + ": " + best.source
		if best.chip != name {
			src = "best published for the " + gen + " generation, " + src
		}
		return best.flops, true, src
	}
	what := "this chip"
	if name != "" {
		what = "the " + name
	}
	return placeholderPeak, false, fmt.Sprintf("no published fp16 peak for %s: %.0f TFLOPS is a placeholder of the right order "+
		"(published figures are 8–19 TFLOPS, ane-anchor §7.2)", what, placeholderPeak/1e12)
}

// identifyChip fills a Chip from what the system reports.
func identifyChip(brand, subType string, cores int) Chip {
	c := Chip{Brand: strings.TrimSpace(brand), SubType: strings.TrimSpace(subType), Cores: cores}
	c.Generation, c.Tier = parseBrand(c.Brand)
	c.Peak, c.PeakMeasured, c.PeakSource = PeakFor(c.Generation, c.Tier)
	return c
}
