# SPDX-License-Identifier: GPL-2.0
# make bench: CDF of per-fault stage-2 latency, stock against nptpool, one panel per
# fault_latency configuration.  Called by scripts/bench_report.py --plots with
# datadir (its plotdata directory: cdf.dat, cdf_vars.gp) and outfile set.
load datadir . "/cdf_vars.gp"

cols = npanels < 3 ? npanels : 3
rows = (npanels + cols - 1) / cols
set terminal pngcairo noenhanced size 520 * cols, 400 * rows + 40 font "sans,9"
set output outfile
set multiplot layout rows, cols title "Stage-2 first-touch fault latency as the guest times it (CDF over all faults of all repetitions)"
set logscale x
set xlabel "latency (µs, log scale)"
set ylabel "fraction of faults"
set yrange [0:1]
set grid
set key bottom right
color(side, mode) = mode eq "pkvm" ? "#2ca02c" : (side eq "stock" ? "#1f77b4" : "#d62728")
dash(mode) = mode eq "vhe" ? 1 : (mode eq "nvhe" ? 2 : 3)
cdf = datadir . "/cdf.dat"
do for [i=1:npanels] {
	blocks = value(sprintf("panel_blocks_%d", i))
	set title word(panel_titles, i)
	plot for [k=1:words(blocks)] cdf \
		index (word(blocks, k) + 0) using 1:2 with lines lw 1.6 \
		lc rgb color(word(line_side, word(blocks, k) + 1), word(line_mode, word(blocks, k) + 1)) \
		dt dash(word(line_mode, word(blocks, k) + 1)) \
		title word(line_mode, word(blocks, k) + 1) . " " . word(line_side, word(blocks, k) + 1)
}
unset multiplot
