# On-demand benchmark (not run by make check): sudo bench/run.sh [--quick]
EXTRA_DIST += bench/run.sh bench/openclose.sh bench/layers.sh bench/RESULTS.md \
	bench/remote.sh bench/rdpat.c
