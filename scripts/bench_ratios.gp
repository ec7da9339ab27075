# SPDX-License-Identifier: GPL-2.0
# make bench: nptpool/stock ratio of every metric and configuration, VHE and nVHE.
# Called by scripts/bench_report.py --plots with datadir (ratios.dat, ratios_vars.gp)
# and outfile set.
load datadir . "/ratios_vars.gp"

set terminal pngcairo noenhanced size 1100, 160 + 13 * nrows font "sans,8"
set output outfile
set datafile separator "\t"
set title "nptpool / stock per configuration (filled: ratio of medians, open: ratio of minimums)\nbelow 1: nptpool faster, except rates (↑), where above 1 is faster"
set logscale x
set xlabel "ratio nptpool / stock (log scale)"
set xrange [*:*]
set yrange [-1:nrows]
set ytics scale 0 font "sans,7" noenhanced
set grid xtics
set key outside top center horizontal
set arrow from 1, graph 0 to 1, graph 1 nohead lw 1.5 lc rgb "black"
plot datadir . "/ratios.dat" using 2:0:ytic(1) with points pt 7 ps 0.8 lc rgb "#1f77b4" title "vhe median", \
     ''                      using 3:0 with points pt 6 ps 0.8 lc rgb "#1f77b4" title "vhe min", \
     ''                      using 4:0 with points pt 9 ps 0.8 lc rgb "#ff7f0e" title "nvhe median", \
     ''                      using 5:0 with points pt 8 ps 0.8 lc rgb "#ff7f0e" title "nvhe min"
