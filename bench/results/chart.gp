set terminal pngcairo size 1100,560 font "DejaVu Sans,10"
set output '/work/main/bench/results/chart.png'
set title "respcache benchmark (2026-12-07): requests per second, median and min-max of the runs"
set style fill solid 0.6 border -1
set grid ytics
set yrange [0:*]
set xrange [-0.6:*]
set ylabel "req/s"
set xtics rotate by -35 nomirror
set bmargin 7
set rmargin 11
set key off
plot '/work/main/bench/results/chart.dat' using 1:3:4:5:(0.35):xticlabels(2) with boxerrorbars lc rgb "#4477aa", \
     '' using 1:3:(sprintf("%.0f", $3)) with labels offset 0,0.8 font ",8"
